"""Solutions for notebook 07 (the learner's stubs are generated from the regions below)."""

from __future__ import annotations

# Each region is a notebook cell and must run on its own, so it carries its own imports.
# ruff: noqa: E402, F811
# %% exercise: entries_after  check: lessons.toolkit.exercise_checks.nb07_one_service:check_entries_after
from typing import Any


async def entries_after(redis: Any, key: str, after: str | None) -> list[tuple[str, bytes]]:
    """The events of a generation's stream `key` strictly after the entry `after` (every event
    when None), oldest first, as (entry id, frame) pairs.

    `redis` is a redis-py asyncio client: `await redis.xrange(key, min=..., max=...)` returns
    `[(entry_id_bytes, {field_bytes: value_bytes}), ...]`. An event's frame is in the field
    `b"f"`; the stream also holds entries that are not events (`b"created"`, `b"end"`).
    """
    ### BEGIN SOLUTION
    # XRANGE includes both ends: "(" makes the start exclusive (Redis 6.2 and later), so the
    # event the client already has is not sent again.
    start = "-" if after is None else f"({after}"
    entries = await redis.xrange(key, min=start, max="+")
    return [(entry_id.decode(), fields[b"f"]) for entry_id, fields in entries if b"f" in fields]
    ### END SOLUTION


# %% end

# %% exercise: trim_length  check: lessons.toolkit.exercise_checks.nb07_one_service:check_trim_length


def trim_length(max_tokens: int) -> int:
    """The smallest `XADD ... MAXLEN` for a generation's stream that never trims away an entry
    a reader may still need, when replies are capped at `max_tokens` output tokens.

    A generation's stream holds: the entry that created it, the `start` event, at most one
    event per output token (text or tool-call pieces), `usage`, the terminal event (`done` or
    `error`), and the end marker.
    """
    ### BEGIN SOLUTION
    # created + start + one per token + usage + done/error + end
    return 1 + 1 + max_tokens + 1 + 1 + 1
    ### END SOLUTION


# %% end

# %% exercise: stop_generation  check: lessons.toolkit.exercise_checks.nb07_one_service:check_stop_generation
from typing import Any


async def stop_generation(store: Any, client_id: str, generation_id: str) -> int:
    """The stop route's work, for any worker: stop `generation_id` for `client_id`, wherever
    its producer runs, and return the HTTP status to answer.

    `store` is the service's `GenerationStore` (shared by every worker): `await
    store.get(generation_id)` gives its `GenerationMeta` (with `.owner`) or None, and `await
    store.request_stop(generation_id)` asks its producer to stop. A generation that does not
    exist, or belongs to another client, is a 404 (and is left alone); otherwise 204.
    """
    ### BEGIN SOLUTION
    meta = await store.get(generation_id)
    # Another client's generation answers exactly as a missing one.
    if meta is None or meta.owner != client_id:
        return 404
    # The producer checks the store at each event it writes, on whichever worker it runs.
    await store.request_stop(generation_id)
    return 204
    ### END SOLUTION


# %% end
