"""Generations in Redis Streams: any worker, on any machine, resumes any generation.

The same interface as the core's in-process store (`GenerationStore` in
`lessons/relay_core/generations.py`), on a real Redis. Per generation, three keys that share one
hash tag, `{<id>}`, so that Redis Cluster keeps them in one slot and one Lua script may touch
them all:

- `chat:{id}:events`, a stream: one entry per SSE event, `XADD ... MAXLEN ~ N` (trimmed: a
  runaway generation cannot fill Redis), then an end marker entry when it finishes;
- `chat:{id}:meta`, a hash: owner, request id, provider, model, readers, when the last reader
  left, a stop request, finished;
- `chat:{id}:lease`, a string: the producer holding the generation (`SET NX PX`), renewed by it
  while it runs. When its worker dies, the lease runs out and readers end with an error instead
  of waiting for ever.

Every key expires: an unfinished generation after its longest possible life (a dead worker's
generation cleans itself up), a finished one `retain_s` after its end. A reader's id is the
stream entry id (`1733097600000-0`): replay is `XRANGE key (<last id> +`, exclusive of the id
the client already has; live follow is the worker's one blocking `XREAD` (redis_tail.py), except
on the worker that produces the generation: its readers get each event from memory as it is
appended, with the id Redis gave it, instead of reading it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from lessons.chat_service import redis_scripts as scripts
from lessons.chat_service.memory_store import ends_generation
from lessons.chat_service.redis_tail import FRAME, StreamTail, Watch
from lessons.relay_core.errors import ErrorCode, StreamFailed
from lessons.relay_core.generations import GenerationMeta, Page

_ENTRY_ID = re.compile(r"\d{1,20}-\d{1,20}")
CREATED = b"created"


class RedisGenerationStore:
    """`GenerationStore` on Redis Streams, shared by every worker of the service.

    `trim_events` caps one generation's stream (XADD MAXLEN ~): keep it above the most events a
    reply can have (its output token cap, plus start, usage and the terminal event), or a
    reader who starts from the beginning finds the beginning gone.
    """

    def __init__(
        self,
        url: str,
        *,
        retain_s: float = 300.0,
        lifetime_s: float = 3600.0,
        max_generations: int = 10_000,
        trim_events: int = 2_000,
        liveness_check_s: float = 1.0,
        abandon_after_s: float = 30.0,
        max_connections: int = 32,
        prefix: str = "chat:",
        client_name: str = "chat-service",
    ) -> None:
        self.url = url
        self.retain_s = retain_s
        # The longest an unfinished generation may exist: past it, even one whose producer died
        # without a word has expired.
        self.lifetime_s = lifetime_s
        self.max_generations = max_generations
        self.trim_events = trim_events
        self.liveness_check_s = liveness_check_s
        # How long a generation may go unread: the value the service gives `Relay.generate`.
        self._abandon_ms = int(abandon_after_s * 1000)
        self.prefix = prefix
        # A bounded pool that makes a command wait for a free connection instead of failing
        # with MaxConnectionsError when every connection is busy.
        self.redis = aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(
                url, max_connections=max_connections, timeout=10, client_name=client_name
            )
        )
        self.tail = StreamTail(url, self.redis, client_name=f"{client_name}-tail")
        self._scripts = {
            name: self.redis.register_script(source)
            for name, source in {
                "admit": scripts.ADMIT,
                "create": scripts.CREATE,
                "append": scripts.APPEND,
                "finish": scripts.FINISH,
                "read": scripts.READ,
                "readers": scripts.READERS,
                "status": scripts.STATUS,
                "stop": scripts.STOP,
                "claim": scripts.CLAIM,
                "renew": scripts.RENEW,
                "alive": scripts.IS_ALIVE,
            }.items()
        }
        # Readers in this worker, per generation: the tail follows a stream while any remain.
        self._readers_here: defaultdict[str, int] = defaultdict(int)
        # Generations this worker produces, per events key: its readers follow them here, as
        # appended (with the ids Redis gave the frames), not through the tail. When they were
        # claimed, so that one whose producer never finished is dropped in the end.
        self._local: dict[str, tuple[float, Watch]] = {}
        # A producer asks "stopped?" then "unread for how long?" back to back, every check
        # interval: one script answers both, the second answer comes from here.
        self._unread: dict[str, tuple[float, float]] = {}
        # Generations this worker's append has told to end (their terminal event is let through).
        self._ending: set[str] = set()
        # (when, stop requested, seconds unread) as each generation's last append found them.
        self._status_seen: dict[str, tuple[float, bool, float]] = {}
        # Appends waiting for the next pipeline, and the task that sends them.
        self._pending: list[tuple[str, Sequence[bytes], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._loaded = False
        # The route's check of a reader's id, kept for that reader's first read.
        self._checked: dict[tuple[str, str | None], tuple[float, Any]] = {}

    # --- lifecycle of the store itself ----------------------------------------------------------

    async def start(self) -> None:
        await self._ensure_scripts()
        await self.tail.start()

    async def close(self) -> None:
        await self.tail.close()
        await self.redis.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    def _key(self, generation_id: str, part: str) -> str:
        return f"{self.prefix}{{{generation_id}}}:{part}"

    # --- GenerationStore ------------------------------------------------------------------------

    async def create(self, meta: GenerationMeta) -> bool:
        lifetime_ms = int(self.lifetime_s * 1000)
        fields = ["owner", meta.owner, "request_id", meta.request_id]
        fields += ["provider", meta.provider, "model", meta.model]
        meta_key, events_key = self._key(meta.id, "meta"), self._key(meta.id, "events")
        for _attempt in range(2):
            try:
                # One round trip: a place in the index (the cap) and the generation's keys. The
                # two live in different slots of a cluster, so they are two scripts, not one.
                await self._ensure_scripts()
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.evalsha(
                        self._scripts["admit"].sha,
                        1,
                        f"{self.prefix}generations",
                        self.max_generations,
                        meta.id,
                        lifetime_ms,
                    )
                    pipe.evalsha(
                        self._scripts["create"].sha, 2, meta_key, events_key, lifetime_ms, *fields
                    )
                    admitted, _created = await pipe.execute()
            except NoScriptError:
                self._loaded = False  # Redis restarted and lost its scripts: load them again
                continue
            except (RedisError, OSError):
                # Redis unreachable: the relay answers 503 (server_busy) and closes the
                # provider's stream, exactly as for a full store.
                return False
            if not admitted:
                await self.redis.delete(meta_key, events_key)  # full: undo the keys
                return False
            return True
        return False

    async def _ensure_scripts(self) -> None:
        """Load the scripts sent by their sha alone (once; again after Redis lost them)."""
        if self._loaded:
            return
        for name in ("admit", "create", "append"):
            await self.redis.script_load(self._scripts[name].script)
        self._loaded = True

    async def get(self, generation_id: str) -> GenerationMeta | None:
        values = await self.redis.hmget(
            self._key(generation_id, "meta"), "owner", "request_id", "provider", "model"
        )
        if values[0] is None:
            return None
        owner, request_id, provider, model = (v.decode() if v else "" for v in values)
        return GenerationMeta(generation_id, owner, request_id, provider, model)

    async def append(self, generation_id: str, frames: Sequence[bytes]) -> None:
        """Store the producer's events (one entry each).

        Appends of every producer in this worker are sent together: while one round trip is
        in flight, the next appends wait for it and then go in one pipeline. With one stream
        that is one round trip per append; with 50, one round trip for many.

        Raises StreamFailed(stopped) once when a stop was requested or nobody has read the
        generation for `abandon_after_s`: the producer then ends it as for any failure, with a
        terminal `stopped` event, closing the provider's stream. A terminal event is always
        stored (the end of a generation stopped by the producer's own checks included).
        """
        done = asyncio.get_running_loop().create_future()
        self._pending.append((generation_id, frames, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        verdict, stop, unread_ms, *ids = await done
        local = self._local.get(self._key(generation_id, "events"))
        if local is not None:
            local[1].add([(i.decode(), f) for i, f in zip(ids, frames, strict=True)])
        # What the producer's periodic checks ask next, just read from Redis: answered from here.
        self._status_seen[generation_id] = (time.monotonic(), bool(stop), int(unread_ms) / 1000)
        if verdict and generation_id not in self._ending:
            self._ending.add(generation_id)
            reason = "a stop was requested" if verdict == 1 else "nobody read it any more"
            raise StreamFailed(ErrorCode.STOPPED, f"generation ended: {reason}")

    async def _flush(self) -> None:
        """Send the waiting appends in one pipeline, until none are left."""
        while self._pending:
            batch, self._pending = self._pending, []
            results: list[Any]
            try:
                results = await self._append_pipeline(batch)
                if any(isinstance(r, NoScriptError) for r in results):
                    # Redis lost its scripts (restarted, SCRIPT FLUSH): load them, send again.
                    self._loaded = False
                    await self._ensure_scripts()
                    results = await self._append_pipeline(batch)
            except BaseException as exc:
                # Whatever went wrong (Redis gone, this task cancelled), no producer waits for
                # ever: each one gets the error.
                for _id, _frames, done in batch:
                    if not done.done():
                        done.set_exception(exc if isinstance(exc, Exception) else RedisError())
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_id, _frames, done), result in zip(batch, results, strict=True):
                if done.done():
                    continue
                if isinstance(result, BaseException):
                    done.set_exception(result)
                else:
                    done.set_result(result)

    async def _append_pipeline(
        self, batch: list[tuple[str, Sequence[bytes], asyncio.Future[Any]]]
    ) -> list[Any]:
        # EVALSHA by hand: redis-py's Script in a pipeline asks SCRIPT EXISTS at every execute.
        sha = self._scripts["append"].sha
        async with self.redis.pipeline(transaction=False) as pipe:
            for generation_id, frames, _done in batch:
                ending = int(ends_generation(frames))
                pipe.evalsha(
                    sha,
                    3,
                    self._key(generation_id, "events"),
                    self._key(generation_id, "meta"),
                    self._key(generation_id, "lease"),
                    self.trim_events,
                    self._abandon_ms,
                    ending,
                    *frames,
                )
            return await pipe.execute(raise_on_error=False)

    async def finish(self, generation_id: str) -> None:
        self._unread.pop(generation_id, None)
        self._status_seen.pop(generation_id, None)
        self._ending.discard(generation_id)
        retain_ms = int(self.retain_s * 1000)
        done = await self._scripts["finish"](
            keys=[
                self._key(generation_id, "meta"),
                self._key(generation_id, "events"),
                self._key(generation_id, "lease"),
            ],
            args=[retain_ms],
        )
        key = self._key(generation_id, "events")
        local = self._local.get(key)
        if local is not None:
            local[1].add([], finished=True)
            if not self._readers_here.get(generation_id):
                del self._local[key]
        if done:
            # The index of generations counts it until it expires.
            await self.redis.zadd(
                f"{self.prefix}generations",
                {generation_id: (time.time() + self.retain_s) * 1000},
                xx=True,
            )

    def parse_position(self, last_event_id: str | None) -> str | None:
        if last_event_id is None or last_event_id == "":
            return None
        if not _ENTRY_ID.fullmatch(last_event_id):
            raise ValueError("Last-Event-ID is not an id of this stream")
        return last_event_id

    async def read(self, generation_id: str, after: str | None, *, wait_s: float) -> Page:
        key = self._key(generation_id, "events")
        deadline = time.monotonic() + wait_s
        while True:
            local = self._local.get(key)
            watch = local[1] if local is not None else self.tail.get(key)
            if watch is not None and watch.covers(after):
                # Already here: what the worker's tail received after the reader's position.
                changed = watch.changed
                entries = watch.after(after)
                if entries or watch.finished:
                    return Page(entries, finished=watch.finished)
            else:
                changed = watch.changed if watch is not None else None
                checked = self._checked.pop((generation_id, after), None)
                if checked is not None and time.monotonic() - checked[0] < 1.0:
                    # The route read exactly this a moment ago, to check the reader's id: the
                    # reader's first read uses it rather than asking Redis again.
                    page, cursor, from_beginning = checked[1]
                else:
                    page, cursor, from_beginning = await self._read_redis(generation_id, after)
                    if wait_s == 0:
                        self._remember_checked(generation_id, after, (page, cursor, from_beginning))
                if page.entries or page.finished or not page.producer_alive:
                    return page
                if watch is None and self._readers_here.get(generation_id):
                    # Caught up: from now on the tail brings this stream's events.
                    watch = self.tail.watch(key, cursor, from_beginning=from_beginning)
                    changed = watch.changed
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Page([], finished=False, producer_alive=await self._alive(generation_id))
            if watch is None or changed is None:
                # Not a reader of this worker (no tail): a plain short poll.
                await asyncio.sleep(min(remaining, 0.05))
                continue
            if not watch.included:
                await asyncio.sleep(0.002)  # the tail's next XREAD is about to include it
                continue
            done, _ = await asyncio.wait((changed,), timeout=min(remaining, self.liveness_check_s))
            if not done and not await self._alive(generation_id):
                return Page([], finished=False, producer_alive=False)

    def _remember_checked(self, generation_id: str, after: str | None, read: Any) -> None:
        now = time.monotonic()
        for key in [k for k, (at, _read) in self._checked.items() if now - at > 2.0]:
            del self._checked[key]  # checked, then never followed (a 204, a client gone)
        self._checked[(generation_id, after)] = (now, read)

    async def _read_redis(self, generation_id: str, after: str | None) -> tuple[Page, str, bool]:
        """One round trip: the entries after `after`, checked, with the generation's state.
        Returns the page, the id the reader is now at, and whether no frame precedes it."""
        reply = await self._scripts["read"](
            keys=[
                self._key(generation_id, "events"),
                self._key(generation_id, "meta"),
                self._key(generation_id, "lease"),
            ],
            args=[after or ""],
        )
        if reply[0] == -1:
            raise ValueError("Last-Event-ID is not an id of this stream")
        exists, leased, finished, raw_entries = reply
        if not exists:
            return Page([], finished=True, producer_alive=False), after or "0-0", after is None
        if after is None and (not raw_entries or CREATED not in _fields(raw_entries[0][1])):
            raise ValueError("the beginning of this generation was trimmed away")
        entries: list[tuple[str, bytes]] = []
        cursor = after or "0-0"
        for raw_id, raw_fields in raw_entries:
            cursor = raw_id.decode()
            values = _fields(raw_fields)
            if FRAME in values:
                entries.append((cursor, values[FRAME]))
        page = Page(entries, finished=bool(finished), producer_alive=bool(leased))
        return page, cursor, after is None and not entries

    async def _alive(self, generation_id: str) -> bool:
        keys = [self._key(generation_id, "lease"), self._key(generation_id, "meta")]
        return bool(await self._scripts["alive"](keys=keys))

    async def reader_joined(self, generation_id: str) -> None:
        self._readers_here[generation_id] += 1
        await self._scripts["readers"](keys=[self._key(generation_id, "meta")], args=[1])

    async def reader_left(self, generation_id: str) -> None:
        self._readers_here[generation_id] -= 1
        if self._readers_here[generation_id] <= 0:
            del self._readers_here[generation_id]
            key = self._key(generation_id, "events")
            self.tail.forget(key)
            local = self._local.get(key)
            if local is not None and local[1].finished:
                del self._local[key]
        with contextlib.suppress(RedisError, OSError):
            await self._scripts["readers"](keys=[self._key(generation_id, "meta")], args=[-1])

    async def unread_for(self, generation_id: str) -> float:
        seen = self._recent_status(generation_id)
        if seen is not None:
            return seen[1]
        cached = self._unread.pop(generation_id, None)
        if cached is not None and time.monotonic() - cached[0] < 0.1:
            return cached[1]
        _stop, unread_s = await self._status(generation_id)
        return unread_s

    def _recent_status(self, generation_id: str) -> tuple[bool, float] | None:
        """(stop requested, seconds unread) as the last append read them, if that was within
        the last 0.2 s: while tokens flow, the producer's checks cost no round trip."""
        seen = self._status_seen.get(generation_id)
        if seen is None or time.monotonic() - seen[0] > 0.2:
            return None
        return seen[1], seen[2]

    async def _status(self, generation_id: str) -> tuple[bool, float]:
        stop, unread_ms = await self._scripts["status"](keys=[self._key(generation_id, "meta")])
        return bool(stop), int(unread_ms) / 1000

    async def request_stop(self, generation_id: str) -> None:
        await self._scripts["stop"](keys=[self._key(generation_id, "meta")])

    async def stop_requested(self, generation_id: str) -> bool:
        seen = self._recent_status(generation_id)
        if seen is not None:
            return seen[0]
        stop, unread_s = await self._status(generation_id)
        # Kept for the unread_for() call that follows (popped there, so nothing accumulates).
        self._unread[generation_id] = (time.monotonic(), unread_s)
        return stop

    async def claim(self, generation_id: str, producer: str, lease_s: float) -> bool:
        claimed = bool(
            await self._scripts["claim"](
                keys=[self._key(generation_id, "lease"), self._key(generation_id, "meta")],
                args=[producer, int(lease_s * 1000)],
            )
        )
        now = time.monotonic()
        for stale in [k for k, (at, _w) in self._local.items() if now - at > self.lifetime_s]:
            del self._local[stale]  # its producer never finished: readers ask Redis
        if claimed:
            key = self._key(generation_id, "events")
            watch = Watch(key, "", from_beginning=True, included=True)
            self._local[key] = (now, watch)
        return claimed

    async def renew(self, generation_id: str, producer: str, lease_s: float) -> bool:
        renewed = bool(
            await self._scripts["renew"](
                keys=[self._key(generation_id, "lease")], args=[producer, int(lease_s * 1000)]
            )
        )
        if not renewed:
            # Another worker produces it now: this worker's readers follow it through Redis.
            self._local.pop(self._key(generation_id, "events"), None)
        return renewed


def _fields(raw: list[bytes] | dict[bytes, bytes]) -> dict[bytes, bytes]:
    """An entry's fields: a flat [name, value, ...] list from a script, or a dict from redis-py."""
    if isinstance(raw, dict):
        return raw
    return dict(zip(raw[::2], raw[1::2], strict=True))
