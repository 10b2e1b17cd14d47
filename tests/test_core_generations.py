"""Generations in this process: produced once into the store, read from any position, stopped,
abandoned, expired. The same behaviour is required of notebook 07's Redis store."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from lessons.relay_core import Finish, Token, Usage
from lessons.relay_core.generations import (
    GenerationMeta,
    MemoryGenerationStore,
    Producer,
    follow,
    ready,
    split_frames,
)
from lessons.relay_core.server import StreamRegistry
from tests.core_harness import FAST, Ended, FakeUpstream, adapter

REPLY = [Token("a"), Token("b"), Token("c"), Finish("stop"), Usage(3, 3)]


def meta(generation_id: str = "g1") -> GenerationMeta:
    return GenerationMeta(id=generation_id, owner="web", request_id="req_1")


async def produce(store: MemoryGenerationStore, upstream: FakeUpstream, **kwargs) -> Producer:
    await store.create(meta())
    producer = Producer(store, meta(), ready(upstream), adapter, settings=FAST, **kwargs)
    await producer.run()
    return producer


async def read_all(
    store: MemoryGenerationStore, after: str | None = None
) -> list[tuple[str, bytes]]:
    return [
        (item.id, item.data)
        async for item in follow(store, "g1", after, wait_s=0.05)
        if not isinstance(item, Finish)
    ]


def test_a_generation_is_stored_once_and_replays_from_any_position() -> None:
    async def scenario() -> tuple[list, list]:
        store = MemoryGenerationStore()
        upstream = FakeUpstream(REPLY)
        await produce(store, upstream)
        assert upstream.closed_at is not None
        return await read_all(store), await read_all(store, "3")

    everything, rest = asyncio.run(scenario())
    names = [data.split(b"\n")[0] for _, data in everything]
    assert names == [b"event: start", b"event: token", b"event: token", b"event: token",
                     b"event: usage", b"event: done"]  # fmt: skip
    assert [entry_id for entry_id, _ in everything] == ["1", "2", "3", "4", "5", "6"]
    assert rest == everything[3:]
    assert all(not data.startswith(b"id:") for _, data in everything), "the store gives the ids"


def test_a_reader_follows_live_and_stops_at_the_end_marker() -> None:
    async def scenario() -> list[str]:
        store = MemoryGenerationStore()
        upstream = FakeUpstream(REPLY, delays=[0.05, 0.05, 0.05])
        await store.create(meta())
        producer = Producer(store, meta(), ready(upstream), adapter, settings=FAST)
        task = asyncio.ensure_future(producer.run())
        await asyncio.sleep(0.01)
        seen = [
            item.id if not isinstance(item, Finish) else "end"
            async for item in follow(store, "g1", None)
        ]
        await task
        return seen

    assert asyncio.run(scenario()) == ["1", "2", "3", "4", "5", "6", "end"]


@pytest.mark.parametrize("bad", ["x", "-1", "²", "1.0", "99", "1234567890"])
def test_a_last_event_id_that_is_not_ours_is_refused(bad: str) -> None:
    async def scenario() -> None:
        store = MemoryGenerationStore()
        await produce(store, FakeUpstream(REPLY))
        position = store.parse_position(bad)
        await store.read("g1", position, wait_s=0)

    with pytest.raises(ValueError):
        asyncio.run(scenario())


def test_a_stop_request_ends_the_generation_with_a_terminal_event() -> None:
    async def scenario() -> tuple[list[bytes], list[str]]:
        store = MemoryGenerationStore()
        upstream = FakeUpstream(REPLY, delays=[0, 30])
        ended = Ended()
        await store.create(meta())
        producer = Producer(
            store,
            meta(),
            ready(upstream),
            adapter,
            settings=FAST,
            on_end=ended,
            check_interval_s=0.02,
        )
        task = asyncio.ensure_future(producer.run())
        await store.reader_joined("g1")
        await asyncio.sleep(0.05)
        await store.request_stop("g1")
        await asyncio.wait_for(task, 2)
        assert upstream.closed_at is not None
        return [data for _, data in await read_all(store)], ended.outcomes

    frames, outcomes = asyncio.run(scenario())
    assert frames[-1].startswith(b"event: error") and b'"code":"stopped"' in frames[-1]
    assert outcomes == ["stopped"]


def test_a_generation_nobody_reads_is_abandoned_and_accounted() -> None:
    async def scenario() -> list[str]:
        store = MemoryGenerationStore()
        upstream = FakeUpstream(REPLY, delays=[0, 30])
        ended = Ended()
        await store.create(meta())
        producer = Producer(
            store, meta(), ready(upstream), adapter, settings=replace(FAST, idle_timeout_s=60),
            on_end=ended, abandon_after_s=0.1, check_interval_s=0.02,
        )  # fmt: skip
        await asyncio.wait_for(producer.run(), 2)
        assert upstream.closed_at is not None
        return ended.outcomes

    assert asyncio.run(scenario()) == ["abandoned"]


def test_the_store_has_a_cap_and_finished_generations_expire() -> None:
    async def scenario() -> tuple[bool, GenerationMeta | None]:
        store = MemoryGenerationStore(max_generations=1, retain_s=0.05)
        await store.create(meta("g1"))
        full = await store.create(meta("g2"))
        await store.finish("g1")
        await asyncio.sleep(0.1)
        return full, await store.get("g1")

    full, expired = asyncio.run(scenario())
    assert full is False and expired is None


def test_concurrent_creates_cannot_overshoot_the_cap() -> None:
    async def scenario() -> int:
        store = MemoryGenerationStore(max_generations=3)
        results = await asyncio.gather(*(store.create(meta(f"g{n}")) for n in range(20)))
        return sum(results)

    assert asyncio.run(scenario()) == 3


def test_shutdown_ends_a_running_generation_with_a_terminal_event() -> None:
    async def scenario() -> bytes:
        store = MemoryGenerationStore()
        registry = StreamRegistry()
        await store.create(meta())
        producer = Producer(
            store, meta(), ready(FakeUpstream(REPLY, delays=[0, 30])), adapter,
            settings=FAST, registry=registry,
        )  # fmt: skip
        registry.spawn(producer.run())
        await store.reader_joined("g1")
        await asyncio.sleep(0.05)
        assert await registry.drain(2) == 1
        return (await read_all(store))[-1][1]

    assert b'"code":"server_shutting_down"' in asyncio.run(scenario())


def test_split_frames_keeps_each_event_whole() -> None:
    data = b'event: a\ndata: {"x":"\\n\\n"}\n\nevent: b\ndata: 1\n\n'
    assert split_frames(data) == [b'event: a\ndata: {"x":"\\n\\n"}\n\n', b"event: b\ndata: 1\n\n"]


def test_one_producer_holds_the_lease_and_readers_see_when_it_is_gone() -> None:
    async def scenario() -> tuple[bool, bool, bool, bool]:
        store = MemoryGenerationStore()
        await store.create(meta())
        first = await store.claim("g1", "worker-a", lease_s=0.05)
        second = await store.claim("g1", "worker-b", lease_s=0.05)
        alive = (await store.read("g1", None, wait_s=0)).producer_alive
        await asyncio.sleep(0.1)  # worker-a died: its lease ran out
        dead = not (await store.read("g1", None, wait_s=0)).producer_alive
        return first, second, alive, dead and not await store.renew("g1", "worker-b", 1.0)

    first, second, alive, dead = asyncio.run(scenario())
    assert first and not second and alive and dead


def test_a_stop_is_heard_while_tokens_flow_fast() -> None:
    """The watchdog re-awaits the supervisor each time it wakes; the checks must still run
    every check interval when tokens come faster than that."""

    async def scenario() -> float:
        store = MemoryGenerationStore()
        many = [Token("x")] * 2_000 + [Finish("stop")]
        upstream = FakeUpstream(many, delays=[0.005] * 2_000)
        await store.create(meta())
        # A long idle deadline: the watchdog then sleeps for long, and is woken by each write.
        settings = replace(FAST, idle_timeout_s=30, total_timeout_s=60)
        producer = Producer(
            store, meta(), ready(upstream), adapter, settings=settings, check_interval_s=0.05
        )
        task = asyncio.ensure_future(producer.run())
        await store.reader_joined("g1")
        await asyncio.sleep(0.1)
        await store.request_stop("g1")
        stopped = asyncio.get_running_loop().time()
        await asyncio.wait_for(task, 5)
        assert producer.outcome == "stopped"
        return asyncio.get_running_loop().time() - stopped

    assert asyncio.run(scenario()) < 0.5


def test_a_finished_generation_replays_whole_after_its_producer_lease_lapsed() -> None:
    async def scenario() -> list[str]:
        store = MemoryGenerationStore()
        await store.create(meta())
        await store.claim("g1", "worker-a", lease_s=0.05)
        producer = Producer(store, meta(), ready(FakeUpstream(REPLY)), adapter, settings=FAST)
        await producer.run()
        await asyncio.sleep(0.1)  # the lease lapsed after the end: the reply is still whole
        return [
            "end" if isinstance(item, Finish) else item.id
            async for item in follow(store, "g1", "2", wait_s=0.05)
        ]

    assert asyncio.run(scenario()) == ["3", "4", "5", "6", "end"]


def test_a_producer_stores_what_its_shape_sends_after_the_terminal_event() -> None:
    from lessons.relay_core.shapes import NamedEvents

    class WithSentinel(NamedEvents):
        def after_terminal(self) -> bytes:
            return b"data: [DONE]\n\n"

    async def scenario() -> bytes:
        store = MemoryGenerationStore()
        await store.create(meta())
        shape = WithSentinel(ids=False)
        producer = Producer(
            store, meta(), ready(FakeUpstream(REPLY)), adapter, settings=FAST, shape=shape
        )
        await producer.run()
        return (await read_all(store))[-1][1]

    assert asyncio.run(scenario()) == b"data: [DONE]\n\n"
