"""A relay's CPU, measured from the notebook: the server thread's own CPU time per request and
per token, and the tasks a stream creates.

A background server runs on a thread of the notebook's process, next to the mock and the client;
the operating system counts CPU time per thread, so reading that thread's counters before and
after a load gives the relay's cost alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.exercises import run_sync
from lessons.toolkit.testkit import collect_many


def thread_cpu_s(server: BackgroundServer) -> float:
    """CPU seconds (user and system) the server's thread has used so far."""
    thread = server._thread
    assert thread is not None and thread.native_id is not None, "the server is not running"
    for entry in psutil.Process().threads():
        if entry.id == thread.native_id:
            return entry.user_time + entry.system_time
    raise LookupError("the server's thread is gone")


@dataclass(frozen=True)
class Costs:
    cpu_ms_per_request: float  # short replies: what one request costs, whatever its length
    cpu_us_per_token: float  # long replies: what each further token costs

    def rows(self) -> list[list[str]]:
        return [
            ["CPU per request", f"{self.cpu_ms_per_request:.1f} ms"],
            ["CPU per token", f"{self.cpu_us_per_token:.0f} us"],
        ]


def measure_costs(
    server: BackgroundServer,
    path: str,
    body: Callable[[str], dict[str, Any]],
    *,
    requests: int = 40,
    streams: int = 5,
) -> Costs:
    """Short replies (`body("short")`) for the per-request cost, long ones (`body("long")`) for
    the per-token cost, from the server thread's CPU time. `body` gets a marker for the mock."""
    url = server.url + path

    def run(marker: str, count: int) -> tuple[float, int]:
        before = thread_cpu_s(server)
        # run_sync: a loop of its own in a thread, so this works inside a notebook's loop too.
        records = run_sync(collect_many(url, [body(marker) for _ in range(count)]))
        tokens = sum(1 for r in records for e in r.events if e.event in ("message", "token"))
        return thread_cpu_s(server) - before, tokens

    run("short", 5)  # warm up: pools, caches
    short_cpu, _ = run("short", requests)
    long_cpu, long_tokens = run("long", streams)
    per_request = short_cpu / requests
    per_token = (long_cpu - per_request * streams) / max(long_tokens, 1)
    return Costs(per_request * 1000, per_token * 1e6)


class TaskCounter:
    """Wraps an ASGI app; counts the asyncio tasks created on its server's loop meanwhile.

    Left out: the tasks the loop creates to close async generators that the garbage collector
    found unfinished (`aclose()` scheduled by the loop's finalizer hook, inside the SDK and
    httpx): how many fall into a request depends on when the collector runs, not on the relay's
    design. Also left out: the counter's own task that removes its hook.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None
        self.created = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)

    def count(self, make_request: Callable[[], Any]) -> int:
        """Tasks created on the server's loop while `make_request()` runs."""
        assert self.loop is not None, "serve the app and send it a request first"
        self.created = 0

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            if not _uncounted(coro):
                self.created += 1
            return asyncio.Task(coro, loop=loop, **kwargs)

        asyncio.run_coroutine_threadsafe(_set_factory(factory), self.loop).result(5)
        try:
            make_request()
        finally:
            asyncio.run_coroutine_threadsafe(_set_factory(None), self.loop).result(5)
        return self.created


def _uncounted(coro: Any) -> bool:
    """A garbage-collected async generator's close, or the counter's own task."""
    return type(coro).__name__ == "async_generator_athrow" or (
        getattr(coro, "__qualname__", "") == _set_factory.__qualname__
    )


async def _set_factory(factory: Any) -> None:
    asyncio.get_running_loop().set_task_factory(factory)
