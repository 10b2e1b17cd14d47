"""A bounded soak: hundreds of streams with random faults and disconnects, then nothing leaked."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import random
import sys
import threading
import time
from typing import Any

import httpx
import openai
import pytest

from lessons.mock_providers import Fault
from lessons.relay_core import EventStream, RelaySettings, read_event
from lessons.relay_core.watchdog import Watchdog
from lessons.resilient_relay.relay import create_app
from lessons.toolkit.sse_parser import SSEEvent, parse_sse

SEED = 20261125
STREAMS = 300
CONCURRENCY = 24
REPLY = " ".join(f"word{n}" for n in range(20))
SETTINGS = RelaySettings(
    open_timeout_s=5, first_token_timeout_s=5, idle_timeout_s=0.5, keepalive_interval_s=0.1
)


# Objects that live exactly as long as one stream: none may outlive the soak.
LEAKABLE = (EventStream, Watchdog, openai.AsyncStream, httpx.Response)


class LoopSpy:
    """Wraps the app to learn which event loop serves it, so the test can count its tasks."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)

    def tasks(self) -> int:
        assert self.loop is not None

        async def count() -> int:
            return len(asyncio.all_tasks())

        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(5)


def open_connections(*urls: str) -> int:
    """TCP connections to or from these servers' ports that are not closed yet (TIME_WAIT is).

    Counted from /proc/net/tcp rather than this process's file descriptors, so that sockets
    other tests' servers open and close meanwhile do not count.
    """
    ports = {int(url.rsplit(":", 1)[1]) for url in urls}
    listening, time_wait = "0A", "06"
    count = 0
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            local, remote, state = line.split()[1:4]
            if state in (listening, time_wait):
                continue
            if int(local.split(":")[1], 16) in ports or int(remote.split(":")[1], 16) in ports:
                count += 1
    return count


# Thread pools keep their idle threads for the next request: AnyIO's (FastAPI runs sync
# dependencies there) and the event loops' default executors (getaddrinfo). They are bounded, by
# the streams that ran at once at most; a thread started per stream, or never ended, is not.
POOLED_THREADS = ("AnyIO worker thread", "asyncio_")


def threads_outside_pools() -> int:
    return sum(not t.name.startswith(POOLED_THREADS) for t in threading.enumerate())


def pooled_threads() -> int:
    return sum(t.name.startswith(POOLED_THREADS) for t in threading.enumerate())


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def plan(rng: random.Random, index: int) -> dict[str, Any]:
    """What happens to stream `index`: a fault at the mock, a client that leaves, or nothing."""
    roll = rng.random()
    after = rng.randrange(0, 12)
    if roll < 0.35:
        return {"kind": "ok"}
    if roll < 0.45:
        return {"kind": "http", "fault": Fault.http_error(rng.choice([429, 500, 529]))}
    if roll < 0.55:
        return {"kind": "error", "fault": Fault.error_event(after)}
    if roll < 0.65:
        return {"kind": "error", "fault": Fault.drop(after)}
    if roll < 0.72:
        # After the first token: before it, the (longer) first-token limit applies.
        return {"kind": "error", "fault": Fault.stall(max(after, 1), 3.0)}
    return {"kind": "leave", "after": after}


async def one_stream(client: httpx.AsyncClient, url: str, prompt: str, step: dict[str, Any]) -> str:
    body = {"message": prompt}
    async with client.stream("POST", f"{url}/chat/stream", json=body) as response:
        if step["kind"] == "http":
            await response.aread()
            assert response.status_code in (429, 502, 503), response.status_code
            assert set(json.loads(response.content)["error"]) == {"code", "message", "request_id"}
            return "http"
        assert response.status_code == 200
        raw = bytearray()
        # aclosing: leaving mid-stream closes the iterator now, not whenever GC finalizes it.
        async with contextlib.aclosing(response.aiter_raw()) as chunks:
            async for chunk in chunks:
                raw += chunk
                if step["kind"] == "leave" and raw.count(b'"done":false') > step["after"]:
                    return "left"
    kinds = [
        read_event(e.event, e.data).kind for e in parse_sse(bytes(raw)) if isinstance(e, SSEEvent)
    ]
    terminals = [k for k in kinds if k in ("done", "error")]
    assert len(terminals) == 1 and kinds[-1] == terminals[0], kinds
    expected = "done" if step["kind"] in ("ok", "leave") else "error"
    assert terminals[0] == expected, (step, kinds, bytes(raw[-300:]))
    return terminals[0]


async def soak(url: str, steps: list[dict[str, Any]], prefix: str = "soak") -> list[str]:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:

        async def run(index: int) -> str:
            async with gate:
                prompt = f"{prefix}-{index}: tell me something."
                return await one_stream(client, url, prompt, steps[index])

        return await asyncio.gather(*(run(i) for i in range(len(steps))))


def collect_earlier_garbage() -> None:
    """Collect what earlier tests in this process left (pitfall apps leave tasks behind on
    purpose) without reporting it here: its unraisable errors are theirs, not this test's."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        gc.collect()
    finally:
        sys.unraisablehook = hook


# Open issue: when this test shares a process with other tests, an httpx2 async generator is
# sometimes finalised mid-await (about one run in three under xdist; never in ten runs alone).
# Every leak check below still holds; this one message is tolerated until its source is found.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object:pytest.PytestUnraisableExceptionWarning"
)
def test_soak_leaves_nothing_behind(mock: Any, serve: Any, monkeypatch: Any) -> None:
    collect_earlier_garbage()
    rng = random.Random(SEED)
    # A warm-up round with the same mix of faults: imports, pools and the SDK's lazily loaded
    # types settle there, so what the measured round leaves behind is what it leaked.
    warm_up = [plan(rng, i) for i in range(2 * CONCURRENCY)]
    steps = [plan(rng, i) for i in range(STREAMS)]
    for prefix, round_steps in (("warm-up", warm_up), ("soak", steps)):
        for index, step in enumerate(round_steps):
            mock.script(
                fault=step.get("fault"),
                prompt_contains=f"{prefix}-{index}:",
                times=None,
                reply=REPLY,
                token_interval_ms=rng.choice([0, 1, 3]),
            )
    app = create_app(SETTINGS)
    spy = LoopSpy(app)
    url = serve(spy)
    # pytest keeps every captured log record, and the relay logs each failure with its exception,
    # whose traceback holds the stream's frames: that would look like a leak. Mute that logger
    # (after the server started: uvicorn's logging setup re-enables existing loggers).
    monkeypatch.setattr(logging.getLogger("lessons.relay"), "disabled", True)

    asyncio.run(soak(url, warm_up, prefix="warm-up"))
    gc.collect()
    threads, tasks = threads_outside_pools(), spy.tasks()
    mock_url = os.environ["OPENAI_BASE_URL"].removesuffix("/v1")
    mock_connections = open_connections(mock_url)
    rss_before = rss_bytes()

    started = time.monotonic()
    outcomes = asyncio.run(soak(url, steps))
    elapsed = time.monotonic() - started

    # Everything ends asynchronously (the server reads each client's close, the relay closes its
    # upstream, the mock notices): wait, within a bound, for what a leak would keep forever.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (
        len(app.state.streams)
        or any(not r.finished for r in mock.requests)
        or open_connections(url)
    ):
        time.sleep(0.05)
    gc.collect()
    rss_growth = rss_bytes() - rss_before  # before gc.get_objects(), which itself costs RSS
    print(f"soak: {STREAMS} streams in {elapsed:.1f} s, RSS {rss_growth:+,} bytes")

    assert elapsed < 20
    assert outcomes.count("left") > 30 and outcomes.count("error") > 30
    assert len(app.state.streams) == 0, "streams still registered"
    assert all(r.finished for r in mock.requests), "the mock is still generating for someone"
    left = {r.outcome for r in mock.requests if r.outcome not in ("completed", "fault")}
    assert left <= {"client_disconnected"}
    assert threads_outside_pools() <= threads
    assert pooled_threads() <= CONCURRENCY + (os.cpu_count() or 1) + 4
    # No client connection is left, and the relay's SDK pool holds at most one idle keep-alive
    # connection per stream that ran at once.
    assert open_connections(url) == 0
    assert open_connections(mock_url) <= mock_connections + CONCURRENCY
    assert spy.tasks() <= tasks
    # Nothing that belongs to a stream is still alive ...
    # type(), not isinstance(): isinstance() reads __class__, which lazy proxies (the SDKs
    # have some) compute, and may fail on.
    alive = [o for o in gc.get_objects() if issubclass(type(o), LEAKABLE)]
    assert not alive, alive[:3]
    # ... and memory is back near its start (the mock's own records of 300 requests included).
    assert rss_growth < 25_000_000
    records = list(app.state.usage.records)[-STREAMS:]
    assert sum(r.estimated for r in records) >= outcomes.count("left")
