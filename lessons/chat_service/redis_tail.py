"""One blocking reader per worker for every generation its clients follow.

A reader that has caught up waits for the next event. Waiting with `XREAD BLOCK` holds a Redis
connection for the whole wait, so one connection per reader means 500 connections for 500
open streams, per worker. Instead, each worker runs one `StreamTail`: a task with one
connection of its own that blocks on `XREAD BLOCK ... STREAMS k1 k2 ... id1 id2 ...` for every
generation followed in this worker at once, keeps what arrives in memory for the worker's
readers, and wakes them. Per event, that is one XADD by the producer and one share of an XREAD
for all the readers of all the generations: readers read from the tail, not from Redis. (The
producer's own worker needs no tail for its generation: the store hands its readers each event
as it is appended, in the same `Watch`.)

When a generation is added while the XREAD blocks, `CLIENT UNBLOCK` (sent on another
connection) ends the wait early, so the next XREAD includes it: a reader of a new generation
does not wait for the block to time out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lessons.relay_core.logs import log_event

# The field names of the entries a generation's stream holds (see redis_store.py).
FRAME = b"f"
END = b"end"


def parse_id(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


@dataclass
class Watch:
    """What this worker has received of one generation's stream since it began watching it."""

    key: str
    start: str  # the stream id the tail reads after (frames from here on are below)
    from_beginning: bool  # no frame of the stream lies at or before `start`
    frames: list[tuple[str, bytes]] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)  # frame id -> index in `frames`
    finished: bool = False
    last_id: str = ""
    included: bool = False  # the tail's XREAD, sent or in flight, covers this stream
    changed: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def __post_init__(self) -> None:
        self.last_id = self.start

    def covers(self, after: str | None) -> bool:
        """True when everything after `after` is here (or on its way here)."""
        if after is None:
            return self.from_beginning
        return after == self.start or after in self.positions

    def after(self, position: str | None) -> list[tuple[str, bytes]]:
        if position is None or position == self.start:
            return list(self.frames)
        return self.frames[self.positions[position] + 1 :]

    def extend(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Entries as the tail's XREAD returned them."""
        frames: list[tuple[str, bytes]] = []
        finished = False
        last_id = self.last_id
        for raw_id, values in entries:
            last_id = raw_id.decode()
            frame = values.get(FRAME)
            if frame is not None:
                frames.append((last_id, frame))
            elif END in values:
                finished = True
        self.add(frames, finished=finished)
        self.last_id = last_id  # the next XREAD's position, whatever the last entry held

    def add(self, frames: Sequence[tuple[str, bytes]], *, finished: bool = False) -> None:
        """Frames with their stream ids (from the tail, or from this worker's own producer),
        then wake every reader waiting on this stream and give later ones a new future."""
        for entry_id, frame in frames:
            self.last_id = entry_id
            self.positions[entry_id] = len(self.frames)
            self.frames.append((entry_id, frame))
        self.finished = self.finished or finished
        changed, self.changed = self.changed, asyncio.get_running_loop().create_future()
        changed.set_result(None)


class StreamTail:
    """The worker's one blocking XREAD over every stream its readers follow."""

    def __init__(
        self,
        url: str,
        commands: aioredis.Redis,
        *,
        block_s: float = 5.0,
        client_name: str = "chat-service-tail",
    ) -> None:
        self.url = url
        # Another connection (the store's pool), for CLIENT UNBLOCK: the tail's own is blocked.
        self._commands = commands
        self.block_ms = int(block_s * 1000)
        self.client_name = client_name
        self._watches: dict[str, Watch] = {}
        self._wanted = asyncio.Event()
        self._client: aioredis.Redis | None = None
        self._client_id: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._nudger: asyncio.Task[None] | None = None
        self.reads = 0  # XREAD round trips so far (the benchmark reports entries per read)

    def __len__(self) -> int:
        return len(self._watches)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-tail")

    async def close(self) -> None:
        for task in (self._task, self._nudger):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                    await task
        if self._client is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._client.aclose()

    def get(self, key: str) -> Watch | None:
        return self._watches.get(key)

    def watch(self, key: str, start: str, *, from_beginning: bool) -> Watch:
        """Follow `key` after the entry `start` (one watch per stream, shared by its readers)."""
        found = self._watches.get(key)
        if found is not None:
            return found
        watch = self._watches[key] = Watch(key, start, from_beginning)
        self._wanted.set()
        if self._nudger is None or self._nudger.done():
            self._nudger = asyncio.get_running_loop().create_task(self._nudge())
        return watch

    def forget(self, key: str) -> None:
        """No reader of this worker follows `key` any more (the next XREAD leaves it out)."""
        self._watches.pop(key, None)

    async def _nudge(self) -> None:
        """Until the XREAD covers every watched stream: end the current wait early."""
        for _ in range(500):
            if all(w.included for w in self._watches.values()):
                return
            if self._client_id is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._commands.client_unblock(self._client_id)
            # An UNBLOCK that arrives before the XREAD does is a no-op: try again shortly.
            await asyncio.sleep(0.002)

    async def _connected(self) -> aioredis.Redis:
        if self._client is None:
            # No socket timeout: the connection blocks in XREAD for up to block_s on purpose.
            client = aioredis.Redis.from_url(
                self.url,
                single_connection_client=True,
                socket_timeout=None,
                client_name=self.client_name,
            )
            self._client_id = await client.client_id()
            self._client = client
        return self._client

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            if not self._watches:
                self._wanted.clear()
                await self._wanted.wait()
                continue
            watches = list(self._watches.values())
            streams: dict[Any, Any] = {w.key: w.last_id for w in watches}
            for w in watches:
                w.included = True
            try:
                client = await self._connected()
                reply = await client.xread(streams, block=self.block_ms)
                backoff = 0.05
            except (RedisError, OSError) as exc:
                # Redis restarting, a network blip: readers time out on their own checks and
                # ask the store; the tail reconnects and reads from where each stream was.
                for w in watches:
                    w.included = False
                log_event(logging.WARNING, "redis_tail_error", exception=type(exc).__name__)
                if self._client is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await self._client.aclose()
                self._client = self._client_id = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            self.reads += 1
            for raw_key, entries in reply or ():
                watch = self._watches.get(raw_key.decode())
                if watch is not None and entries:
                    watch.extend(entries)
