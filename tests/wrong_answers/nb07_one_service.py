"""Wrong answers for notebook 07's exercises: each must be reported as "not yet"."""

_ENTRIES_HEAD = """
from typing import Any


async def entries_after(redis: Any, key: str, after: str | None) -> list[tuple[str, bytes]]:
"""

# The pitfall: XRANGE from the client's id includes that id, so one event comes back again.
INCLUSIVE = (
    _ENTRIES_HEAD
    + """
    entries = await redis.xrange(key, min=after or "-", max="+")
    return [(i.decode(), f[b"f"]) for i, f in entries if b"f" in f]
"""
)
# Exclusive, but the stream's own markers go out as if they were events.
WITH_MARKERS = (
    _ENTRIES_HEAD
    + """
    start = "-" if after is None else f"({after}"
    entries = await redis.xrange(key, min=start, max="+")
    return [(i.decode(), f.get(b"f", b"")) for i, f in entries]
"""
)
# One event too many skipped: an off-by-one in the other direction.
SKIPS_ONE = (
    _ENTRIES_HEAD
    + """
    entries = await redis.xrange(key, min="-", max="+")
    events = [(i.decode(), f[b"f"]) for i, f in entries if b"f" in f]
    if after is None:
        return events
    ids = [i for i, _ in events]
    position = ids.index(after) if after in ids else -1
    return events[position + 2 :]
"""
)
# Not awaited: a sync function cannot use the asyncio client.
SYNC = """
def entries_after(redis, key, after):
    return []
"""

# Only the tokens: the start, usage, terminal event and markers are forgotten.
TOKENS_ONLY = """
def trim_length(max_tokens: int) -> int:
    return max_tokens
"""
# Every event, but not the entry that created the stream (nor the end marker).
EVENTS_ONLY = """
def trim_length(max_tokens: int) -> int:
    return max_tokens + 3
"""
# Forgets the entry that created the stream: its loss is how the store sees a trimmed start.
NO_CREATED = """
def trim_length(max_tokens: int) -> int:
    return max_tokens + 4
"""
# Safe, but no bound at all on a runaway generation.
HUGE = """
def trim_length(max_tokens: int) -> int:
    return 1_000_000
"""

_STOP_HEAD = """
from typing import Any


async def stop_generation(store: Any, client_id: str, generation_id: str) -> int:
"""
# Stops whatever it is asked to: another client's generation included.
NO_OWNER_CHECK = (
    _STOP_HEAD
    + """
    meta = await store.get(generation_id)
    if meta is None:
        return 404
    await store.request_stop(generation_id)
    return 204
"""
)
# Checks the owner, answers 204, and asks nothing of the store: the producer goes on.
ANSWERS_ONLY = (
    _STOP_HEAD
    + """
    meta = await store.get(generation_id)
    if meta is None or meta.owner != client_id:
        return 404
    return 204
"""
)
# Says 404 to the stranger but stops the generation anyway.
STOPS_FOR_STRANGERS = (
    _STOP_HEAD
    + """
    meta = await store.get(generation_id)
    if meta is None:
        return 404
    await store.request_stop(generation_id)
    return 404 if meta.owner != client_id else 204
"""
)

WRONG_ANSWERS = {
    "entries_after": [INCLUSIVE, WITH_MARKERS, SKIPS_ONE, SYNC],
    "trim_length": [TOKENS_ONLY, EVENTS_ONLY, NO_CREATED, HUGE],
    "stop_generation": [NO_OWNER_CHECK, ANSWERS_ONLY, STOPS_FOR_STRANGERS],
}
