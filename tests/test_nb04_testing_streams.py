"""Notebook 04's lesson code: the relay under test, the fixed client, the naive client's blind
spots, and what each way of reaching an app from a test really delivers.

The relay's tests here use the test kit; tests/test_nb04_plain_httpx.py has their twins written
with pytest, httpx and httpx-sse alone, under the same names (notebook 04 shows them side by side).
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.middleware.gzip import GZipMiddleware

from lessons.mock_providers import Fault
from lessons.testing_streams import (
    chat_app,
    naive_client_pitfall,
    silent_error_pitfall,
    ticking_app,
)
from lessons.testing_streams.client import (
    StreamErrorEvent,
    StreamHTTPError,
    StreamIncomplete,
    StreamTimeout,
    astream_text,
    stream_text,
)
from lessons.toolkit.testkit import (
    assert_error_event,
    assert_http_error,
    assert_incremental,
    assert_no_event_after_terminal,
    assert_one_terminal_event,
    assert_streaming_headers,
    assert_upstream_cancelled,
    collect_sync,
)

PROMPT = {"message": "What is machine learning?"}


# --- the relay under test --------------------------------------------------------------------


def test_relay_streams_the_exact_reply(mock, serve) -> None:
    url = serve(chat_app.create_app())
    record = collect_sync(f"{url}/chat/stream", PROMPT)
    assert_streaming_headers(record)
    assert record.headers["x-request-id"].startswith("req_")
    observed = mock.last_request()
    assert observed.messages == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": PROMPT["message"]},
    ]
    assert all(d == {"token": d["token"], "done": False} for d in record.data()[:-1])
    assert_one_terminal_event(record)
    assert record.data()[-1] == {"token": "", "done": True}
    assert record.text() == observed.reply_text


def test_relay_sends_compact_events_on_the_wire(serve) -> None:
    url = serve(chat_app.create_app())
    record = collect_sync(f"{url}/chat/stream", {"message": "Say hello."})
    # The raw wire: one `data:` line per event, compact JSON, LF LF after each.
    assert record.raw.startswith(b'data: {"token":"Hello","done":false}\n\n')
    assert record.raw.endswith(b'data: {"token":"","done":true}\n\n')
    assert record.incomplete_tail is None


def test_relay_delivers_the_first_token_before_the_provider_finishes(mock, serve) -> None:
    url = serve(chat_app.create_app())
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    record = collect_sync(f"{url}/chat/stream", PROMPT)
    assert_incremental(record, mock.last_request(), mock=mock)


@pytest.mark.parametrize(
    ("status", "expected_status", "code"),
    [(429, 429, "rate_limited"), (401, 502, "provider_auth_failed"), (500, 502, "provider_error")],
)
def test_relay_maps_provider_errors_before_the_stream(
    mock, serve, status: int, expected_status: int, code: str
) -> None:
    url = serve(chat_app.create_app())
    mock.script(fault=Fault.http_error(status))
    record = collect_sync(f"{url}/chat/stream", PROMPT)
    error = assert_http_error(record, expected_status, code)
    assert error["request_id"] == record.headers["x-request-id"]
    assert "mock" not in error["message"].lower()


MID_STREAM_FAILURES = [
    # OpenAI's mid-stream error is a `server_error` whatever the cause: a provider_error.
    (Fault.error_event(after_tokens=3), "provider_error"),
    (Fault.error_event(after_tokens=2, kind="server_error"), "provider_error"),
    (Fault.drop(after_tokens=2), "stream_interrupted"),
    # The stream ends cleanly but without a finish reason: cut short, never `done`.
    (Fault.end_early(after_tokens=2), "stream_interrupted"),
]


@pytest.mark.parametrize(("fault", "code"), MID_STREAM_FAILURES)
def test_relay_ends_a_failed_stream_with_one_error_event(mock, serve, fault, code: str) -> None:
    url = serve(chat_app.create_app())
    mock.script(fault=fault)
    record = collect_sync(f"{url}/chat/stream", PROMPT)
    data = assert_error_event(record, code)
    assert data["done"] is True
    assert_no_event_after_terminal(record)
    assert record.text() == "".join(d.get("token", "") for d in record.data()[:-1])


def test_relay_validates_the_body(mock, serve) -> None:
    url = serve(chat_app.create_app())
    for body in ({}, {"message": ""}, {"message": "   "}, {"message": "x" * 32_001}):
        record = collect_sync(f"{url}/chat/stream", body)
        assert_http_error(record, 422, "invalid_request")
        assert b"xxxxxxxxxx" not in record.raw, "a 422 echoes nothing of the input"
    assert mock.requests == []


def test_relay_closes_the_upstream_when_the_client_leaves(mock, serve) -> None:
    url = serve(chat_app.create_app())
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    record = collect_sync(f"{url}/chat/stream", PROMPT, stop_after=3)
    assert len(record.events) == 3
    assert_upstream_cancelled(mock)


def test_starlette_gzip_leaves_event_streams_alone(mock, serve) -> None:
    # Starlette 1.10's GZipMiddleware skips text/event-stream: not the buffering culprit.
    app = chat_app.create_app()
    app.add_middleware(GZipMiddleware, minimum_size=10)
    url = serve(app)
    mock.set_timing(ttft_ms=0, token_interval_ms=15)
    record = collect_sync(f"{url}/chat/stream", PROMPT, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in record.headers
    assert_incremental(record, mock.last_request(), mock=mock)


# --- the fixed client ------------------------------------------------------------------------


def test_client_returns_the_text(mock, serve) -> None:
    url = serve(chat_app.create_app())
    seen: list[str] = []
    text = stream_text(f"{url}/chat/stream", PROMPT, on_token=seen.append)
    assert text == mock.last_request().reply_text == "".join(seen)
    assert asyncio.run(astream_text(f"{url}/chat/stream", PROMPT)) == text


@pytest.mark.parametrize("use_async", [False, True])
def test_client_raises_on_an_http_error(mock, serve, use_async: bool) -> None:
    url = serve(chat_app.create_app())
    mock.script(fault=Fault.http_error(429, retry_after=1))
    with pytest.raises(StreamHTTPError) as caught:
        if use_async:
            asyncio.run(astream_text(f"{url}/chat/stream", PROMPT))
        else:
            stream_text(f"{url}/chat/stream", PROMPT)
    assert (caught.value.status, caught.value.code) == (429, "rate_limited")
    assert caught.value.request_id.startswith("req_")


@pytest.mark.parametrize("use_async", [False, True])
def test_client_raises_on_an_error_event(mock, serve, use_async: bool) -> None:
    url = serve(chat_app.create_app())
    mock.script(fault=Fault.error_event(after_tokens=3))
    with pytest.raises(StreamErrorEvent) as caught:
        if use_async:
            asyncio.run(astream_text(f"{url}/chat/stream", PROMPT))
        else:
            stream_text(f"{url}/chat/stream", PROMPT)
    assert caught.value.code == "provider_error"
    assert caught.value.partial_text


def test_client_raises_when_the_stream_just_stops(mock, serve) -> None:
    url = serve(silent_error_pitfall.create_app())
    mock.script(fault=Fault.error_event(after_tokens=3))
    with pytest.raises(StreamIncomplete, match="without a terminal event"):
        stream_text(f"{url}/chat/stream", PROMPT)


@pytest.mark.parametrize("use_async", [False, True])
def test_client_times_out_on_a_stalled_stream(mock, serve, use_async: bool) -> None:
    url = serve(chat_app.create_app())
    mock.script(fault=Fault.stall(after_tokens=2, seconds=5))
    started = time.monotonic()
    with pytest.raises(StreamTimeout):
        if use_async:
            asyncio.run(astream_text(f"{url}/chat/stream", PROMPT, timeout=0.5))
        else:
            stream_text(f"{url}/chat/stream", PROMPT, stall_timeout=0.5)
    assert time.monotonic() - started < 4.5  # gave up well before the stall ended


def test_client_reads_every_route_shape_of_the_contract() -> None:
    from httpx_sse import ServerSentEvent

    from lessons.testing_streams.client import _Reply

    shapes = [
        ['{"token": "Hi", "done": false}', '{"token": "", "done": true}'],  # /chat/stream
        [
            '{"event": "start", "model": "m"}',
            '{"event": "token", "token": "Hi"}',
            '{"event": "done", "tokens": 1}',
        ],  # /chat/stream-meta
        # /langchain/stream: TokenEvents, with the provider's usage in `done`
        [
            '{"token": "Hi", "done": false}',
            '{"token": "", "done": true, "usage": {"input_tokens": 9, "output_tokens": 1}}',
        ],
    ]
    for shape in shapes:
        reply = _Reply(None)
        for data in shape:
            reply.take(ServerSentEvent(data=data))
        assert reply.text() == "Hi"
    reply = _Reply(None)
    reply.take(ServerSentEvent(event="start", data='{"provider": "openai"}'))
    reply.take(ServerSentEvent(event="token", data='{"text": "Hi"}'))
    reply.take(ServerSentEvent(event="done", data='{"finish_reason": "stop"}'))
    assert reply.text() == "Hi"
    with pytest.raises(StreamErrorEvent):
        _Reply(None).take(ServerSentEvent(event="error", data='{"code": "x", "message": "m"}'))
    with pytest.raises(StreamIncomplete):
        _Reply(None).text()


# --- the naive client cannot notice failures -------------------------------------------------


def test_naive_client_reports_an_error_event_as_success(mock, serve, capsys) -> None:
    url = serve(chat_app.create_app())
    mock.script(fault=Fault.error_event(after_tokens=3))
    assert naive_client_pitfall.test_stream(f"{url}/chat/stream", PROMPT) is None
    assert "Stream complete" in capsys.readouterr().out


def test_naive_client_is_silent_on_an_http_error(mock, serve, capsys) -> None:
    url = serve(chat_app.create_app())
    mock.script(fault=Fault.http_error(429))
    assert naive_client_pitfall.test_stream(f"{url}/chat/stream", PROMPT) is None
    assert capsys.readouterr().out == ""


def test_naive_client_takes_a_stream_that_just_stops_for_a_short_reply(mock, serve, capsys):
    url = serve(silent_error_pitfall.create_app())
    mock.script(fault=Fault.error_event(after_tokens=3))
    assert naive_client_pitfall.test_stream(f"{url}/chat/stream", PROMPT) is None
    printed = capsys.readouterr().out
    # Three tokens, and no word of a failure: it looks like a reply that happened to be short.
    assert printed and mock.last_request().reply_text.startswith(printed)


# --- three ways to reach an app from a test --------------------------------------------------

TICKS = "/ticks?count=8&interval_ms=40"


def _first_and_last(chunks: list[float], started: float) -> tuple[float, float]:
    return chunks[0] - started, chunks[-1] - started


def test_live_server_delivers_chunks_as_they_are_produced(serve) -> None:
    url = serve(ticking_app.app)
    record = collect_sync(url + TICKS, method="GET")
    first, last = _first_and_last(record.arrivals, record.started_at)
    assert last - first >= 0.2  # eight 40 ms sleeps apart, not all at once


def test_asgi_transport_buffers_the_whole_response() -> None:
    async def run() -> tuple[float, float]:
        transport = httpx.ASGITransport(app=ticking_app.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            started = time.monotonic()
            arrivals: list[float] = []
            async with http.stream("GET", TICKS) as response:
                async for _chunk in response.aiter_bytes():
                    arrivals.append(time.monotonic())
            return _first_and_last(arrivals, started)

    first, last = asyncio.run(run())
    assert first >= 0.25  # nothing before the generator finished (8 x 40 ms)
    assert last - first < 0.05


def test_starlette_testclient_streams_incrementally() -> None:
    with TestClient(ticking_app.app) as client:
        started = time.monotonic()
        arrivals: list[float] = []
        with client.stream("GET", TICKS) as response:
            for _chunk in response.iter_bytes():
                arrivals.append(time.monotonic())
    first, last = _first_and_last(arrivals, started)
    assert last - first >= 0.2
