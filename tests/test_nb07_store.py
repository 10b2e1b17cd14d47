"""One interface, two stores: the same tests hold the in-process store and the Redis store to
the behaviour of `GenerationStore` (lessons/relay_core/generations.py), on a real redis-server;
then what only the Redis store has (trimming, expiry in Redis, one blocking connection)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest

from lessons.chat_service.memory_store import ServiceMemoryStore
from lessons.chat_service.redis_store import RedisGenerationStore
from lessons.relay_core import Finish, Token, Usage
from lessons.relay_core.events import Frame
from lessons.relay_core.generations import (
    GenerationMeta,
    MemoryGenerationStore,
    Producer,
    follow,
    ready,
)
from lessons.toolkit.pytest_fixtures import require_or_skip
from lessons.toolkit.redis_server import INSTALL_HINT, RedisServer, redis_available, run_redis
from tests.core_harness import FAST, Ended, FakeUpstream, adapter

REPLY = [Token("a"), Token("b"), Token("c"), Finish("stop"), Usage(3, 3)]
NAMES = [
    b"event: start",
    b"event: token",
    b"event: token",
    b"event: token",
    b"event: usage",
    b"event: done",
]
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer | None]:
    if not redis_available():
        yield None
        return
    with run_redis() as server:
        yield server


@pytest.fixture(params=["memory", "service-memory", "redis"])
def store_factory(request: pytest.FixtureRequest, redis_server: RedisServer | None) -> Callable:
    """`async with store_factory(**options) as store`: a fresh store of each kind: the core's
    in-process store, the service's (the same, with the Redis store's append), Redis."""
    kind = request.param
    if kind == "redis":
        require_or_skip(redis_server is not None, f"redis-server is not installed ({INSTALL_HINT})")

    @asynccontextmanager
    async def make(**options: Any) -> AsyncIterator[Any]:
        if kind != "redis":
            options.pop("liveness_check_s", None)
            if kind == "memory":
                yield MemoryGenerationStore(**options)
            else:
                yield ServiceMemoryStore(**options)
            return
        assert redis_server is not None
        options.setdefault("liveness_check_s", 0.05)
        store = RedisGenerationStore(redis_server.url, prefix=f"test{next(_prefixes)}:", **options)
        await store.start()
        try:
            yield store
        finally:
            await store.close()

    make.kind = kind  # type: ignore[attr-defined]
    return make


def meta(generation_id: str = "g1", owner: str = "web") -> GenerationMeta:
    return GenerationMeta(id=generation_id, owner=owner, request_id="req_1", provider="openai")


def producer(store: Any, upstream: FakeUpstream, generation_id: str = "g1", **options: Any):
    options.setdefault("settings", FAST)
    return Producer(store, meta(generation_id), ready(upstream), adapter, **options)


async def read_all(store: Any, after: str | None = None, generation_id: str = "g1") -> list:
    return [
        (item.id, item.data)
        async for item in follow(store, generation_id, after, wait_s=0.05)
        if not isinstance(item, Finish)
    ]


def test_a_generation_is_stored_once_and_replays_from_any_position(store_factory) -> None:
    async def scenario() -> list[list[tuple[str, bytes]]]:
        async with store_factory() as store:
            assert await store.create(meta())
            upstream = FakeUpstream(REPLY)
            await producer(store, upstream).run()
            assert upstream.closed_at is not None
            everything = await read_all(store)
            return [everything] + [await read_all(store, entry_id) for entry_id, _ in everything]

    everything, *rests = asyncio.run(scenario())
    assert [data.split(b"\n")[0] for _, data in everything] == NAMES
    ids = [entry_id for entry_id, _ in everything]
    assert len(set(ids)) == len(ids), "ids are unique"
    for position, rest in enumerate(rests, start=1):
        assert rest == everything[position:], f"after the {position}th id"
    assert all(not data.startswith(b"id:") for _, data in everything), "the store gives the ids"


def test_a_reader_follows_live_and_stops_at_the_end_marker(store_factory) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        async with store_factory() as store:
            await store.create(meta())
            upstream = FakeUpstream(REPLY, delays=[0.05, 0.05, 0.05])
            task = asyncio.ensure_future(producer(store, upstream).run())
            await asyncio.sleep(0.01)
            seen = [
                "end" if isinstance(item, Finish) else item.data.split(b"\n")[0].decode()
                async for item in follow(store, "g1", None)
            ]
            await task
            return seen, [entry_id for entry_id, _ in await read_all(store)]

    seen, _ids = asyncio.run(scenario())
    assert seen == [name.decode() for name in NAMES] + ["end"]


@pytest.mark.parametrize("bad", ["x", "-1", "²", "1.0", "1-x", "99", "9999999999999-0"])
def test_a_last_event_id_that_is_not_ours_is_refused(store_factory, bad: str) -> None:
    async def scenario() -> None:
        async with store_factory() as store:
            await store.create(meta())
            await producer(store, FakeUpstream(REPLY)).run()
            position = store.parse_position(bad)
            await store.read("g1", position, wait_s=0)

    with pytest.raises(ValueError):
        asyncio.run(scenario())


def test_an_id_of_another_generation_is_refused_by_the_redis_store(store_factory) -> None:
    if store_factory.kind != "redis":
        pytest.skip("the in-process stores number every generation 1, 2, ...")

    async def scenario() -> None:
        async with store_factory() as store:
            for generation_id in ("g1", "g2"):
                await store.create(meta(generation_id))
                await producer(store, FakeUpstream(REPLY), generation_id).run()
            other = (await read_all(store, None, "g2"))[2][0]
            await store.read("g1", store.parse_position(other), wait_s=0)

    with pytest.raises(ValueError):
        asyncio.run(scenario())


def test_a_stop_request_ends_the_generation_with_a_terminal_event(store_factory) -> None:
    async def scenario() -> tuple[list[bytes], list[str], bool]:
        async with store_factory() as store:
            upstream = FakeUpstream(REPLY, delays=[0, 30])
            ended = Ended()
            await store.create(meta())
            task = asyncio.ensure_future(
                producer(store, upstream, on_end=ended, check_interval_s=0.02).run()
            )
            await store.reader_joined("g1")
            await asyncio.sleep(0.05)
            await store.request_stop("g1")
            await asyncio.wait_for(task, 2)
            await store.reader_left("g1")
            frames = [data for _, data in await read_all(store)]
            return frames, ended.outcomes, upstream.closed_at is not None

    frames, outcomes, closed = asyncio.run(scenario())
    assert frames[-1].startswith(b"event: error") and b'"code":"stopped"' in frames[-1]
    assert outcomes == ["stopped"] and closed


def test_a_generation_nobody_reads_is_abandoned_and_one_being_read_is_not(store_factory) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        async with store_factory() as store:
            outcomes = []
            for generation_id, reading in (("left", False), ("read", True)):
                ended = Ended()
                await store.create(meta(generation_id))
                # The reply pauses for 0.4 s after its first token: long past abandon_after_s.
                upstream = FakeUpstream(REPLY, delays=[0, 0.4])
                await store.reader_joined(generation_id)
                if not reading:
                    await store.reader_left(generation_id)  # the last reader leaves at once
                run = producer(
                    store,
                    upstream,
                    generation_id,
                    on_end=ended,
                    abandon_after_s=0.1,
                    check_interval_s=0.02,
                    settings=replace(FAST, idle_timeout_s=5),
                )
                await asyncio.wait_for(run.run(), 3)
                if reading:
                    await store.reader_left(generation_id)
                outcomes.append(ended.outcomes)
            return outcomes[0], outcomes[1]

    left, read = asyncio.run(scenario())
    assert left == ["abandoned"], "nobody reads: cancelled after abandon_after_s"
    assert read == ["completed"], "a reader was there throughout: generated to the end"


def test_the_store_has_a_cap_and_finished_generations_expire(store_factory) -> None:
    async def scenario() -> tuple[bool, GenerationMeta | None, GenerationMeta | None, bool]:
        async with store_factory(max_generations=1, retain_s=0.2) as store:
            await store.create(meta("g1"))
            full = await store.create(meta("g2"))
            await store.finish("g1")
            kept = await store.get("g1")
            await asyncio.sleep(0.35)
            return full, kept, await store.get("g1"), await store.create(meta("g3"))

    full, kept, expired, room_again = asyncio.run(scenario())
    assert full is False, "a full store refuses a new generation"
    assert kept is not None and kept.owner == "web" and kept.provider == "openai"
    assert expired is None, "retained for retain_s, then gone"
    assert room_again, "an expired generation frees its place"


def test_concurrent_creates_cannot_overshoot_the_cap(store_factory) -> None:
    async def scenario() -> int:
        async with store_factory(max_generations=3) as store:
            results = await asyncio.gather(*(store.create(meta(f"g{n}")) for n in range(20)))
            return sum(results)

    assert asyncio.run(scenario()) == 3


def test_one_producer_holds_the_lease_and_readers_see_when_it_is_gone(store_factory) -> None:
    async def scenario() -> tuple[bool, bool, bool, bool, bool]:
        async with store_factory() as store:
            await store.create(meta())
            first = await store.claim("g1", "worker-a", lease_s=0.1)
            second = await store.claim("g1", "worker-b", lease_s=0.1)
            alive = (await store.read("g1", None, wait_s=0)).producer_alive
            await asyncio.sleep(0.25)  # worker-a died: its lease ran out
            dead = not (await store.read("g1", None, wait_s=0)).producer_alive
            taken_over = await store.renew("g1", "worker-b", 1.0)
            return first, second, alive, dead, taken_over

    first, second, alive, dead, taken_over = asyncio.run(scenario())
    assert first and not second, "one producer per generation"
    assert alive and dead, "readers can tell a dead producer from a slow one"
    assert not taken_over, "a lease nobody holds cannot be renewed"


def test_a_follower_of_a_dead_producer_ends_without_the_end_marker(store_factory) -> None:
    async def scenario() -> tuple[list[Any], float]:
        async with store_factory() as store:
            await store.create(meta())
            await store.claim("g1", "worker-a", lease_s=0.2)
            await store.append("g1", [b"event: start\ndata: {}\n\n"])
            loop = asyncio.get_running_loop()
            began = loop.time()
            items = [item async for item in follow(store, "g1", None, wait_s=0.1)]
            return items, loop.time() - began

    items, waited = asyncio.run(scenario())
    assert len(items) == 1 and not isinstance(items[-1], Finish), "no `done` for a dead producer"
    assert waited < 1.5, f"the reader waited {waited:.2f} s after the lease ran out"


# --- only the Redis store -----------------------------------------------------------------------


@pytest.fixture
def redis_only(redis_server: RedisServer | None) -> RedisServer:
    require_or_skip(redis_server is not None, f"redis-server is not installed ({INSTALL_HINT})")
    assert redis_server is not None
    return redis_server


def test_a_replay_whose_beginning_was_trimmed_is_refused(redis_only: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisGenerationStore(redis_only.url, prefix="trim:", trim_events=3)
        await store.start()
        try:
            await store.create(meta())
            # Exact trimming: approximate trimming (~, the default) removes whole nodes only.
            for n in range(5):
                await store.redis.xadd(
                    store._key("g1", "events"), {b"f": b"%d" % n}, maxlen=3, approximate=False
                )
            await store.read("g1", None, wait_s=0)
        finally:
            await store.close()

    with pytest.raises(ValueError, match="trimmed"):
        asyncio.run(scenario())


def test_every_key_expires_finished_or_not(redis_only: RedisServer) -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        store = RedisGenerationStore(redis_only.url, prefix="ttl:", retain_s=60, lifetime_s=600)
        await store.start()
        try:
            await store.create(meta("running"))
            await store.create(meta("done"))
            await store.claim("running", "worker-a", 5.0)
            await store.append("running", [b"event: start\ndata: {}\n\n"])
            await store.finish("done")
            r = store.redis
            running = [await r.pttl(store._key("running", p)) for p in ("meta", "events", "lease")]
            done = [await r.pttl(store._key("done", p)) for p in ("meta", "events")]
            return running, done
        finally:
            await store.close()

    running, done = asyncio.run(scenario())
    assert all(0 < ttl <= 600_000 for ttl in running[:2]) and 0 < running[2] <= 5_000
    assert all(0 < ttl <= 60_000 for ttl in done), "a finished generation is kept retain_s"


def test_readers_of_many_generations_share_one_blocking_connection(redis_only: RedisServer) -> None:
    """50 readers waiting at once, on 50 generations another worker produces: the readers'
    worker keeps its connections within its pool plus the tail's one, and every reader gets its
    next event."""

    async def scenario() -> tuple[int, int, list[int]]:
        producer = RedisGenerationStore(redis_only.url, prefix="many:", client_name="producer")
        store = RedisGenerationStore(
            redis_only.url, prefix="many:", max_connections=8, client_name="many-readers"
        )
        await producer.start()
        await store.start()
        try:
            ids = [f"g{n}" for n in range(50)]
            for generation_id in ids:
                await producer.create(meta(generation_id))
                await producer.claim(generation_id, "worker-a", 30.0)

            async def reader(generation_id: str) -> int:
                got = 0
                async for item in follow(store, generation_id, None, wait_s=2.0):
                    if isinstance(item, Finish):
                        break
                    got += 1
                return got

            readers = [asyncio.ensure_future(reader(g)) for g in ids]
            await asyncio.sleep(0.3)  # every reader has caught up and waits
            clients = [
                c for c in await store.redis.client_list() if c["name"].startswith("many-readers")
            ]
            blocked = sum(1 for c in clients if c.get("cmd") == "xread")
            for generation_id in ids:
                await producer.append(generation_id, [b"event: token\ndata: {}\n\n"])
                await producer.finish(generation_id)
            counts = await asyncio.wait_for(asyncio.gather(*readers), 5)
            return len(clients), blocked, counts
        finally:
            await store.close()
            await producer.close()

    connections, blocked, counts = asyncio.run(scenario())
    assert blocked == 1, f"{blocked} connections blocked in XREAD, expected the tail's one"
    assert connections <= 8 + 1, f"{connections} connections for 50 readers"
    assert counts == [1] * 50, "every reader got the event appended while it waited"


def test_the_producers_own_worker_serves_its_readers_from_memory(redis_only: RedisServer) -> None:
    """Readers on the worker that produces a generation get its events as they are appended,
    with the ids Redis gave them, without reading them back: no XREAD, no XRANGE once caught
    up. A reader on another worker, through Redis, gets exactly the same ids and events."""

    async def scenario() -> tuple[list[Any], list[Any], int, int]:
        here = RedisGenerationStore(redis_only.url, prefix="local:", client_name="producer")
        elsewhere = RedisGenerationStore(redis_only.url, prefix="local:", client_name="other")
        await here.start()
        await elsewhere.start()
        try:
            await here.create(meta("g"))
            await here.claim("g", "worker-a", 30.0)

            async def read_all(store: RedisGenerationStore) -> list[Any]:
                return [
                    (item.id, item.data) if isinstance(item, Frame) else item
                    async for item in follow(store, "g", None, wait_s=2.0)
                ]

            local = asyncio.ensure_future(read_all(here))
            remote = asyncio.ensure_future(read_all(elsewhere))
            await asyncio.sleep(0.2)  # both caught up and waiting
            reads_before = here.tail.reads
            for n in range(5):
                await here.append("g", [f"event: token\ndata: {n}\n\n".encode()])
            await here.finish("g")
            got_here, got_elsewhere = await asyncio.wait_for(asyncio.gather(local, remote), 5)
            return got_here, got_elsewhere, here.tail.reads - reads_before, len(here._local)
        finally:
            await here.close()
            await elsewhere.close()

    got_here, got_elsewhere, tail_reads, left = asyncio.run(scenario())
    assert got_here == got_elsewhere, "the same ids and events, from memory and from Redis"
    assert [data for _id, data in got_here[:-1]] == [
        f"event: token\ndata: {n}\n\n".encode() for n in range(5)
    ]
    assert tail_reads == 0, "the producer's worker read its own events back from Redis"
    assert left == 0, "a finished generation with no reader left stays in memory"


def test_a_stop_request_takes_effect_while_tokens_flow(store_factory) -> None:

    async def scenario() -> tuple[float, bytes, int]:
        async with store_factory() as store:
            await store.create(meta())
            upstream = FakeUpstream([Token("x")] * 200 + [Finish("stop")], delays=[0.01] * 200)
            run = producer(store, upstream, settings=replace(FAST, idle_timeout_s=5))
            task = asyncio.ensure_future(run.run())
            await store.reader_joined("g1")
            await asyncio.sleep(0.3)
            loop = asyncio.get_running_loop()
            asked = loop.time()
            await store.request_stop("g1")
            await asyncio.wait_for(task, 3)
            took = loop.time() - asked
            await store.reader_left("g1")
            frames = await read_all(store)
            return took, frames[-1][1], upstream.pulled

    took, last, pulled = asyncio.run(scenario())
    assert b'"code":"stopped"' in last, last
    assert took < 0.5 and pulled < 150, f"stopped {took:.2f} s later, after {pulled} tokens"


def test_a_long_reply_keeps_its_lease_while_tokens_flow(store_factory) -> None:
    """A reply longer than the lease, tokens every 10 ms: a reader must not take the producer
    for dead (the lease is renewed while it writes)."""

    async def scenario() -> list[Any]:
        async with store_factory() as store:
            await store.create(meta())
            await store.claim("g1", "worker-a", lease_s=0.3)
            upstream = FakeUpstream([Token("x")] * 100 + [Finish("stop")], delays=[0.01] * 100)
            run = producer(
                store,
                upstream,
                settings=replace(FAST, idle_timeout_s=5),
                producer_id="worker-a",
                lease_s=0.3,
            )
            task = asyncio.ensure_future(run.run())
            items = [item async for item in follow(store, "g1", None, wait_s=0.1)]
            await task
            return items

    items = asyncio.run(scenario())
    assert isinstance(items[-1], Finish), f"the reader ended after {len(items)} items"
    assert len(items) == 1 + 100 + 1 + 1, "start, 100 tokens, done, then the end"
