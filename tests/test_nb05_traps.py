"""The known traps notebook 05 measures: a timeout around each read, a spinning generator,
BaseHTTPMiddleware, gzip on event streams; and the lesson relay beside each."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware

from lessons.mock_providers import Fault
from lessons.relay_core import RelaySettings
from lessons.resilient_relay import (
    base_middleware_pitfall,
    gzip_pitfall,
    read_timeout_pitfall,
    spinning_generator_pitfall,
)
from lessons.resilient_relay.relay import create_app
from lessons.toolkit.testkit import assert_one_terminal_event, classify, collect_sync

PROMPT = "What is machine learning?"
INTERVAL_MS = 25  # the canned reply has about 70 tokens: about 1.8 s in all


def first_chunk_and_leave(url: str, *, gzip: bool = False) -> float:
    """Seconds to the first body chunk; then the client leaves."""
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    started = time.monotonic()
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", f"{url}/chat/stream", json={"message": PROMPT}, headers=headers) as r,
    ):
        # iter_bytes undoes gzip: a compressed stream's first raw bytes are only its header.
        for chunk in r.iter_bytes():
            if chunk:
                return time.monotonic() - started
    raise AssertionError("no body")


def test_a_timeout_around_each_read_ends_the_reply_at_the_first_pause(
    mock: Any, serve: Any
) -> None:
    pitfall = serve(read_timeout_pitfall.app)
    relay = serve(create_app(RelaySettings(keepalive_interval_s=read_timeout_pitfall.KEEPALIVE_S)))
    pause = Fault.stall(3, seconds=3 * read_timeout_pitfall.KEEPALIVE_S)
    records = {}
    for name, url in (("pitfall", pitfall), ("relay", relay)):
        mock.reset()
        mock.script(pause)
        records[name] = collect_sync(f"{url}/chat/stream", {"message": PROMPT})
        records[name + " provider"] = mock.wait_until_finished(mock.last_request())
    cut, whole = records["pitfall"], records["relay"]
    # The keep-alive timer cancelled the SDK's read: the reply "ends", and says it is complete.
    assert classify(assert_one_terminal_event(cut)).kind == "done"
    assert cut.comments and len(cut.events) == 4
    assert records["pitfall provider"].outcome == "client_disconnected"
    # The watchdog sends keep-alives without touching the read: the whole reply arrives.
    assert classify(assert_one_terminal_event(whole)).kind == "done" and whole.comments
    assert whole.text() == records["relay provider"].reply_text
    assert records["relay provider"].outcome == "completed"


def test_spinning_generator_starves_the_loop_and_ignores_the_client(mock: Any, serve: Any) -> None:
    url = serve(spinning_generator_pitfall.app)
    mock.script(token_interval_ms=INTERVAL_MS)
    health_s: list[float] = []

    def probe() -> None:
        time.sleep(0.3)  # the stream is spinning by now
        started = time.monotonic()
        httpx.get(f"{url}/health", timeout=10)
        health_s.append(time.monotonic() - started)

    prober = threading.Thread(target=probe)
    prober.start()
    first_chunk_and_leave(url)
    prober.join()
    seen = mock.wait_until_finished(mock.last_request(), timeout=5)
    # The loop never read the disconnect, so the reply was generated to the end ...
    assert seen.outcome == "completed"
    # ... and /health waited for the spinning stream (relative to the mock's own timing).
    reply_s = seen.finished_at - seen.started_at
    assert health_s[0] > 0.5 * (reply_s - 0.3)


def test_the_resilient_relay_keeps_serving_and_cancels(mock: Any, serve: Any) -> None:
    url = serve(create_app(RelaySettings()))
    mock.script(token_interval_ms=INTERVAL_MS)
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", f"{url}/chat/stream", json={"message": PROMPT}) as r,
    ):
        chunks = r.iter_raw()  # kept: a discarded iterator closes the connection
        next(chunks)
        started = time.monotonic()
        assert httpx.get(f"{url}/health", timeout=10).json()["streams"] == 1
        assert time.monotonic() - started < 0.5
    seen = mock.wait_until_finished(mock.last_request(), timeout=2)
    assert seen.outcome == "client_disconnected"


def test_passthrough_base_http_middleware_streams_and_sees_disconnects(
    mock: Any, serve: Any
) -> None:
    url = serve(base_middleware_pitfall.passthrough_app)
    mock.script(token_interval_ms=INTERVAL_MS)
    assert first_chunk_and_leave(url) < 0.5
    seen = mock.wait_until_finished(mock.last_request(), timeout=2)
    assert seen.outcome == "client_disconnected"
    assert seen.tokens_sent < seen.tokens_planned


def test_body_reading_middleware_buffers_and_ignores_disconnects(mock: Any, serve: Any) -> None:
    url = serve(base_middleware_pitfall.app)
    mock.script(token_interval_ms=INTERVAL_MS)
    first_s = first_chunk_and_leave(url)
    seen = mock.wait_until_finished(mock.last_request(), timeout=5)
    assert seen.outcome == "completed"
    # Nothing reached the client before the mock had sent its last token.
    assert first_s >= 0.9 * (seen.finished_at - seen.started_at)


def test_naive_gzip_holds_the_stream_back(mock: Any, serve: Any) -> None:
    url = serve(gzip_pitfall.app)
    mock.script(token_interval_ms=INTERVAL_MS)
    first_s = first_chunk_and_leave(url, gzip=True)
    seen = mock.wait_until_finished(mock.last_request(), timeout=5)
    # No text could be decoded before the mock had sent its last token.
    assert first_s >= 0.9 * (seen.finished_at - seen.started_at)


def test_starlette_gzip_leaves_event_streams_alone(mock: Any, serve: Any) -> None:
    app: FastAPI = create_app(RelaySettings())
    app.add_middleware(GZipMiddleware, minimum_size=10)
    url = serve(app)
    mock.script(token_interval_ms=INTERVAL_MS)
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST",
            f"{url}/chat/stream",
            json={"message": PROMPT},
            headers={"Accept-Encoding": "gzip"},
        ) as r,
    ):
        assert "content-encoding" not in r.headers
        started = time.monotonic()
        chunks = r.iter_raw()
        next(chunks)
        assert time.monotonic() - started < 0.5
