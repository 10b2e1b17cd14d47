"""Run any ASGI app with uvicorn in a background thread on 127.0.0.1, for notebooks and tests."""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn

# Servers started by notebook cells, by name, so that re-running a cell replaces its server
# instead of failing on a second start or leaking the first one.
_NAMED_SERVERS: dict[str, BackgroundServer] = {}
_NAMED_LOCK = threading.Lock()


class BackgroundServer:
    """One uvicorn server in a daemon thread, bound to a free loopback port.

    Logging is kept at warning level and the access log is off: uvicorn's startup lines and
    access log would otherwise land in whichever notebook cell is running, with ports and PIDs
    that differ on every run.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 10.0,
        **uvicorn_options: Any,
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._startup_timeout = startup_timeout
        self._uvicorn_options = {
            "log_level": "warning",
            "access_log": False,
            # Keep-alive connections from a test client must not keep shutdown waiting.
            "timeout_graceful_shutdown": 2,
            **uvicorn_options,
        }
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._startup_error: BaseException | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server is not running; call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        if self.running:
            return self
        config = uvicorn.Config(
            self.app, host=self.host, port=self._requested_port, **self._uvicorn_options
        )
        server = uvicorn.Server(config)
        self._startup_error = None
        thread = threading.Thread(
            target=self._run, args=(server,), name="background-uvicorn", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(
                    "the background server stopped during startup (is the port in use, or did "
                    "the app's lifespan fail?); see the log above"
                ) from self._startup_error
            if time.monotonic() > deadline:
                server.should_exit = True
                thread.join(timeout=5)
                raise TimeoutError(f"server did not start within {self._startup_timeout} s")
            time.sleep(0.005)
        self._server, self._thread = server, thread
        self.port = server.servers[0].sockets[0].getsockname()[1]
        return self

    def _run(self, server: uvicorn.Server) -> None:
        # uvicorn ends a failed startup with sys.exit(); in a thread that would surface as an
        # unhandled-thread warning far from its cause. Keep it and report it from start().
        try:
            server.run()
        except SystemExit as exc:
            self._startup_error = exc

    def stop(self, timeout: float = 10.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout=timeout)
        if thread.is_alive():
            # Open streams did not finish within the graceful period: close them.
            server.force_exit = True
            thread.join(timeout=timeout)
        self._server = self._thread = None
        self.port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<BackgroundServer {state}>"


def serve_in_background(app: Any, *, name: str, **options: Any) -> BackgroundServer:
    """Start `app` in the background under `name`, stopping the server a previous run started.

    This is the notebook entry point: re-running a cell (or the whole notebook in one kernel)
    swaps the old server for a new one rather than leaving it on an orphaned port.
    """
    with _NAMED_LOCK:
        previous = _NAMED_SERVERS.pop(name, None)
        if previous is not None:
            previous.stop()
        server = BackgroundServer(app, **options).start()
        _NAMED_SERVERS[name] = server
        return server


def stop_background_servers() -> None:
    """Stop every server started with serve_in_background (for a notebook's last cell)."""
    with _NAMED_LOCK:
        servers = list(_NAMED_SERVERS.values())
        _NAMED_SERVERS.clear()
    for server in servers:
        server.stop()


def quiet_uvicorn_logs() -> None:
    """Keep uvicorn's error logger for real errors but drop its info lines in notebooks."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
