"""Shutdown that ends every stream in flight with a terminal event, and the server that does it.

What uvicorn does on its own when asked to stop (SIGTERM, or `should_exit`): it stops
accepting, lets in-flight responses run, and waits for them, for ever unless
`timeout_graceful_shutdown` is set, in which case it then cancels them mid-stream. Only after
that does the app's lifespan hear about the shutdown, too late to tell a stream anything. So the
client of a long stream either holds up the deploy or sees its stream cut with no terminal event.

`DrainingServer` overrides the server's public `shutdown()` method: it first asks each open stream
to end (each sends its terminal `server_shutting_down` event, closes its upstream, and is
accounted), then runs uvicorn's own shutdown. `serve()` runs it, with several worker processes if
asked. The plain `uvicorn` command and gunicorn's uvicorn worker use uvicorn's own `Server`, so
they do not drain: with them, streams are cut at `timeout_graceful_shutdown` (see the README).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
import socket
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.supervisors import multiprocess

from lessons.relay_core.grants import GRANT_KEY_ENV

if TYPE_CHECKING:
    from lessons.relay_core.stream import EventStream


class StreamRegistry:
    """The streams in flight in this process, so that shutdown can end each one."""

    def __init__(self) -> None:
        self._open: set[EventStream] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.draining = False

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run work that outlives its request (a generation's producer), kept until it ends."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._open)

    def add(self, stream: EventStream) -> None:
        self._open.add(stream)
        self._idle.clear()

    def discard(self, stream: EventStream) -> None:
        self._open.discard(stream)
        if not self._open:
            self._idle.set()

    async def drain(self, timeout_s: float) -> int:
        """Refuse new streams; end every open one now; wait up to `timeout_s`. Returns how many."""
        self.draining = True
        streams = list(self._open)
        for stream in streams:
            stream.stop("shutdown")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        # Whatever is left (a task that never registered a stream) is cancelled, not leaked.
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return len(streams)


def registry_of(app: Any) -> StreamRegistry | None:
    """The registry of a lesson app, looking through the middleware uvicorn wraps it in."""
    seen = 0
    while app is not None and seen < 20:
        state = getattr(app, "state", None)
        registry = getattr(state, "streams", None)
        if isinstance(registry, StreamRegistry):
            return registry
        app = getattr(app, "app", None)
        seen += 1
    return None


class DrainingServer(uvicorn.Server):
    """A uvicorn server that drains the app's streams before its normal graceful shutdown."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        drain_timeout_s: float = 5.0,
        freeze_after_startup: bool = False,
    ) -> None:
        super().__init__(config)
        self.drain_timeout_s = drain_timeout_s
        self.freeze_after_startup = freeze_after_startup
        self.drained = 0

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.freeze_after_startup:
            # What the process holds once the app has started (the SDKs, FastAPI, the app's
            # clients) lives as long as the process: out of the garbage collector's reach, a
            # full collection walks only what requests allocated. Measured by
            # benchmarks/bench_service.py for a worker of notebook 07's service: about 250,000
            # objects, a full collection 85 ms, during which every stream of the worker waits;
            # under 0.1 ms after. A server process, not a notebook's, is what this is for:
            # serve() sets it.
            gc.freeze()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        registry = registry_of(getattr(self.config, "loaded_app", None) or self.config.app)
        if registry is not None:
            self.drained = await registry.drain(self.drain_timeout_s)
        await super().shutdown(sockets)


class _DrainingConfig(uvicorn.Config):
    """A uvicorn config that carries the drain timeout to worker processes (it is pickled to
    each one; a class attribute set in the supervisor would not be)."""

    def __init__(self, app: str | Any, *, drain_timeout_s: float, **options: Any) -> None:
        super().__init__(app, **options)
        self.drain_timeout_s = drain_timeout_s


class _DrainingProcess(multiprocess.Process):
    """One worker of uvicorn's supervisor, running a DrainingServer instead of uvicorn's own."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            timeout = getattr(self.config, "drain_timeout_s", 5.0)
            self._server = DrainingServer(
                self.config, drain_timeout_s=timeout, freeze_after_startup=True
            )
        return self._server


def serve(
    app: str | Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    drain_timeout_s: float = 5.0,
    **options: Any,
) -> None:
    """Run `app` with the draining server; `workers > 1` needs `app` as an import string.

    Each server process freezes what it holds after startup, out of the garbage collector's
    reach (see DrainingServer.startup).

    With several workers, uvicorn's supervisor binds the socket once and starts the workers
    (restarting any that dies); each one runs a DrainingServer, and SIGTERM to the supervisor
    reaches every worker, which drains.
    """
    options.setdefault("timeout_graceful_shutdown", int(drain_timeout_s) + 5)
    config = _DrainingConfig(
        app, host=host, port=port, workers=workers, drain_timeout_s=drain_timeout_s, **options
    )
    if workers <= 1:
        DrainingServer(config, drain_timeout_s=drain_timeout_s, freeze_after_startup=True).run()
        return
    if not isinstance(app, str):
        raise ValueError("several workers need the app as an import string, e.g. 'pkg.app:app'")
    # Workers must share the key that signs grants (a browser's GET may reach any of them).
    os.environ.setdefault(GRANT_KEY_ENV, secrets.token_hex(32))
    # uvicorn's supervisor makes its workers from its module's `Process` (uvicorn 0.54, pinned
    # in the lock): make them draining ones. Only this process, the supervisor, is affected.
    multiprocess.Process = _DrainingProcess  # type: ignore[misc]
    sock = config.bind_socket()
    multiprocess.Multiprocess(config, sockets=[sock]).run()
