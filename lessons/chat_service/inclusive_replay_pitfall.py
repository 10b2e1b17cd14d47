"""Wrong: replays from the client's Last-Event-ID inclusively, so every reconnect repeats one event.

A first version of the replay, as many tutorials write it: `XRANGE key <last id> +`. Redis'
XRANGE includes both ends, so the entry the client already has comes back first, and the
client shows its token twice; it also hands out the stream's own markers (the entry that
created the stream, the end marker) as if they were events. Measured in notebook 07, and fixed
there as an exercise.
"""

from __future__ import annotations

import redis.asyncio as aioredis


async def events_after(
    redis: aioredis.Redis, key: str, after: str | None
) -> list[tuple[str, bytes]]:
    """The entries of the stream `key` after the entry `after` (all of them when None)."""
    entries = await redis.xrange(key, min=after or "-", max="+")
    return [(entry_id.decode(), b"".join(fields.values())) for entry_id, fields in entries]
