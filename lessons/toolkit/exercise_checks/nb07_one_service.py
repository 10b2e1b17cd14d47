"""Checkers for notebook 07's exercises: a replay that neither loses nor repeats, the trim
length of a generation's stream, and a stop route that works from any worker."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import APIRouter, Request, Response

from lessons.chat_service.app import create_app
from lessons.chat_service.memory_store import ServiceMemoryStore
from lessons.chat_service.settings import ServiceSettings
from lessons.mock_providers import MockProviders
from lessons.relay_core import ProtectionSettings, ReaderContext, RelaySettings
from lessons.relay_core.generations import GenerationMeta
from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.exercises import NotYet, run_sync
from lessons.toolkit.one_service import FakeStreams, read_generation, serve_together
from lessons.toolkit.providers import sdk_env_pointed_at

# --- entries_after ----------------------------------------------------------------------------


async def _generation_stream(streams: FakeStreams, key: str, tokens: int) -> list[str]:
    """A generation's stream as the service writes it; returns the ids of its events."""
    await streams.xadd(key, {"created": "1"})
    ids = [await streams.xadd(key, {"f": b"event: start\ndata: {}\n\n"})]
    for n in range(tokens):
        frame = b'event: token\ndata: {"text":"t%d"}\n\n' % n
        ids.append(await streams.xadd(key, {"f": frame}))
    ids.append(await streams.xadd(key, {"f": b"event: usage\ndata: {}\n\n"}))
    ids.append(await streams.xadd(key, {"f": b"event: done\ndata: {}\n\n"}))
    await streams.xadd(key, {"end": "1"})
    return [i.decode() for i in ids]


async def check_entries_after(candidate: Callable[..., Any]) -> None:
    if not inspect.iscoroutinefunction(candidate):
        raise NotYet("make it `async def`: redis-py's asyncio client is awaited")
    streams = FakeStreams()
    key = "chat:{g1}:events"
    ids = await _generation_stream(streams, key, tokens=5)
    frames = {
        i: fields[b"f"]
        for i, fields in ((e.decode(), f) for e, f in streams.streams[key])
        if b"f" in fields
    }
    everything = await candidate(streams, key, None)
    if not isinstance(everything, list) or not all(
        isinstance(pair, tuple) and len(pair) == 2 for pair in everything
    ):
        raise NotYet("return a list of (entry id, frame) tuples")
    got_ids = [entry_id for entry_id, _ in everything]
    if any(isinstance(entry_id, bytes) for entry_id in got_ids):
        raise NotYet("give the entry ids as str (decode the bytes redis-py returns)")
    if len(got_ids) > len(ids):
        raise NotYet(
            f"{len(got_ids)} entries for {len(ids)} events: the stream also holds entries that "
            "are not events (the one that created it, the end marker); keep only those with "
            'a frame, b"f"'
        )
    if got_ids != ids:
        raise NotYet(f"without `after`, expected every event {ids[:3]}..., got {got_ids[:3]}...")
    if [frame for _, frame in everything] != [frames[i] for i in ids]:
        raise NotYet('each pair holds the entry\'s frame: the value of its field b"f"')
    for position, last in enumerate(ids):
        rest = [entry_id for entry_id, _ in await candidate(streams, key, last)]
        if rest[:1] == [last]:
            raise NotYet(
                f"a client that has seen {last} gets {last} again: XRANGE includes both ends, "
                "so every reconnect repeats one event"
            )
        if rest != ids[position + 1 :]:
            raise NotYet(f"after {last}, expected {ids[position + 1 :][:3]}..., got {rest[:3]}...")


# --- trim_length --------------------------------------------------------------------------------


async def _replay_after_trim(max_tokens: int, maxlen: int) -> tuple[bool, int, int]:
    """Write the longest generation of `max_tokens` tokens with exact trimming at `maxlen`;
    return whether its beginning survived, how many events a replay from the start gets, and
    how many there were."""
    streams = FakeStreams()
    key = "chat:{g1}:events"

    async def add(fields: dict[str, Any]) -> None:
        await streams.xadd(key, fields, maxlen=maxlen, approximate=False)

    await add({"created": "1"})
    events = 0
    for frame in [b"start", *([b"token"] * max_tokens), b"usage", b"done"]:
        await add({"f": frame})
        events += 1
    await add({"end": "1"})
    kept = streams.streams[key]
    created = any(b"created" in fields for _, fields in kept)
    return created, sum(b"f" in fields for _, fields in kept), events


async def check_trim_length(candidate: Callable[[int], Any]) -> None:
    for max_tokens in (1, 16, 500):
        maxlen = candidate(max_tokens)
        if not isinstance(maxlen, int) or isinstance(maxlen, bool) or maxlen < 1:
            raise NotYet(f"trim_length({max_tokens}) must be a positive int, got {maxlen!r}")
        created, replayed, events = await _replay_after_trim(max_tokens, maxlen)
        if not created or replayed < events:
            lost = events - replayed
            what = (
                f"its first {lost} event(s), which a reader replaying from the beginning (after "
                "a reload) would never get"
                if lost
                else "the entry that created the stream, by which the store tells a whole "
                "stream from one whose beginning is gone"
            )
            raise NotYet(
                f"with replies of up to {max_tokens} tokens, MAXLEN {maxlen} trims away {what}. "
                "Count every entry of the stream, not only the tokens"
            )
        needed = max_tokens + 5
        if maxlen > needed:
            raise NotYet(
                f"trim_length({max_tokens}) = {maxlen}: {maxlen - needed} more than a reply can "
                "use. The trim is what bounds a runaway generation's memory; find the smallest "
                "value that loses nothing"
            )


# --- stop_generation ----------------------------------------------------------------------------

TOKEN_A = "exercise-client-a-0123456789"
TOKEN_B = "exercise-client-b-0123456789"
_PROTECTION = ProtectionSettings(tokens={TOKEN_A: "client-a", TOKEN_B: "client-b"})
_SETTINGS = RelaySettings(client_system_prompt=False, keepalive_interval_s=0.5)
_LONG = {"messages": [{"role": "user", "content": "Explain streaming in one paragraph."}]}


class _NoStore:
    """A store that knows no generation: to call the candidate once, outside any server."""

    async def get(self, generation_id: str) -> GenerationMeta | None:
        return None

    async def request_stop(self, generation_id: str) -> None:
        return None


def _worker_with(candidate: Callable[..., Any], store: ServiceMemoryStore) -> Any:
    """One "worker": the service on the shared store, with the candidate as a stop route."""
    router = APIRouter()

    @router.delete("/exercise/generations/{generation_id}")
    async def stop(generation_id: str, request: Request, reader: ReaderContext) -> Response:
        status = await candidate(request.app.state.generations, reader.client_id, generation_id)
        return Response(status_code=int(status))

    app = create_app(_SETTINGS, _PROTECTION, service=ServiceSettings(), store=store)
    app.include_router(router)
    return app


def check_stop_generation(candidate: Callable[..., Any]) -> None:
    if not inspect.iscoroutinefunction(candidate):
        raise NotYet("make it `async def`: the store's methods are awaited")
    missing = run_sync(candidate(_NoStore(), "client-a", "no-such-generation"))
    if missing != 404:
        raise NotYet(f"a generation that does not exist answers 404, not {missing!r}")
    mock = MockProviders(ttft_ms=0, token_interval_ms=25)
    store = ServiceMemoryStore(abandon_after_s=30.0)
    with (
        BackgroundServer(mock.app) as mock_server,
        sdk_env_pointed_at(mock_server.url),
        # Two "workers" of one process on one loop, sharing one store.
        serve_together(_worker_with(candidate, store), _worker_with(candidate, store)) as urls,
    ):
        _stop_scenario(mock, *urls)


def _stop_scenario(mock: Any, first: str, second: str) -> None:
    auth_a = {"Authorization": f"Bearer {TOKEN_A}"}
    auth_b = {"Authorization": f"Bearer {TOKEN_B}"}
    started = read_generation(first, headers=auth_a, body=_LONG, until=3)
    generation_id = started.generation_id
    path = f"/exercise/generations/{generation_id}"
    stranger = httpx.delete(second + path, headers=auth_b, timeout=5)
    if stranger.status_code != 404:
        raise NotYet(
            f"client B's stop of client A's generation answered {stranger.status_code}: "
            "another client's generation is a 404, as if it did not exist"
        )
    time.sleep(0.15)
    if mock.requests[0].outcome != "in_progress":
        raise NotYet("client B stopped client A's generation: check who owns it first")
    owner = httpx.delete(second + path, headers=auth_a, timeout=5)
    if owner.status_code != 204:
        raise NotYet(f"the owner's stop answered {owner.status_code}, expected 204")
    rest = read_generation(
        first,
        headers=auth_a,
        generation_id=generation_id,
        last_event_id=started.events[-1].id,
        timeout=10,
    )
    last = rest.last
    if last is None or last.kind != "error" or last.code != "stopped":
        raise NotYet(
            "the stop was answered on the second worker, but the generation went on: the "
            "producer runs on the first one. Ask for the stop through the store, which every "
            "worker's producer reads"
        )
    try:
        seen = mock.wait_until_finished(mock.requests[0], timeout=5)
    except TimeoutError as exc:
        raise NotYet("the provider kept generating after the stop") from exc
    if seen.outcome != "client_disconnected":
        raise NotYet(f"the provider's stream ended as {seen.outcome}, not cancelled")
