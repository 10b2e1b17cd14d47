"""The background server starts on a free loopback port, serves, is replaced by name, and stops
without leaving a thread or a listening socket behind."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest
from fastapi import FastAPI

from lessons.toolkit.background import (
    BackgroundServer,
    serve_in_background,
    stop_background_servers,
)


def make_app(reply: str) -> FastAPI:
    app = FastAPI()

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"reply": reply}

    return app


def port_is_listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def uvicorn_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "background-uvicorn"]


def test_context_manager_serves_then_releases_port_and_thread() -> None:
    before = len(uvicorn_threads())
    with BackgroundServer(make_app("hi")) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert httpx.get(server.url).json() == {"reply": "hi"}
        port = server.port
        assert port is not None
    assert not port_is_listening(port)
    assert len(uvicorn_threads()) == before
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


def test_two_servers_get_different_free_ports() -> None:
    with BackgroundServer(make_app("a")) as a, BackgroundServer(make_app("b")) as b:
        assert a.port != b.port
        assert httpx.get(a.url).json()["reply"] == "a"
        assert httpx.get(b.url).json()["reply"] == "b"


def test_rerunning_a_cell_replaces_the_named_server() -> None:
    first = serve_in_background(make_app("first"), name="cell")
    first_port = first.port
    second = serve_in_background(make_app("second"), name="cell")
    try:
        assert not first.running
        assert first_port is not None and not port_is_listening(first_port)
        assert httpx.get(second.url).json()["reply"] == "second"
    finally:
        stop_background_servers()
    assert not second.running


def test_failing_lifespan_reports_instead_of_hanging() -> None:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def broken(app: FastAPI):
        raise RuntimeError("startup failed")
        yield

    server = BackgroundServer(FastAPI(lifespan=broken), startup_timeout=5)
    with pytest.raises(RuntimeError, match="stopped during startup"):
        server.start()
    assert not server.running
