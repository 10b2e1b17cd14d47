"""The streaming test kit: it records what arrived and when, and each assertion fails on the
broken app it exists to catch (a buffering one, a silent error, a leaked upstream)."""

from __future__ import annotations

import asyncio

import pytest

from lessons.mock_providers import Fault
from lessons.testing_streams import (
    buffering_pitfall,
    chat_app,
    leaky_upstream_pitfall,
    silent_error_pitfall,
    ticking_app,
)
from lessons.toolkit.sse_parser import SSEEvent
from lessons.toolkit.testkit import (
    StreamRecord,
    StreamTimeoutError,
    assert_error_event,
    assert_http_error,
    assert_incremental,
    assert_no_event_after_terminal,
    assert_one_terminal_event,
    assert_streaming_headers,
    assert_upstream_cancelled,
    collect,
    collect_many,
    collect_sync,
    is_terminal,
)

PROMPT = {"message": "What is machine learning?"}


def record_of(*events: SSEEvent, tail: str | None = None) -> StreamRecord:
    record = StreamRecord(url="test", status=200, events=list(events), incomplete_tail=tail)
    record.arrivals = [float(i) for i in range(len(events))]
    return record


TOKEN = SSEEvent(data='{"token": "Hi", "done": false}')
DONE = SSEEvent(data='{"token": "", "done": true}')
ERROR = SSEEvent(data='{"error": "x", "code": "provider_error", "request_id": "r", "done": true}')


# --- the record and the terminal predicate, without a server ---------------------------------


@pytest.mark.parametrize(
    ("event", "terminal"),
    [
        (TOKEN, False),
        (DONE, True),
        (ERROR, True),
        (SSEEvent(data='{"event": "token", "token": "a"}'), False),
        (SSEEvent(data='{"event": "done", "tokens": 3}'), True),
        (SSEEvent(data='{"event": "error", "code": "x"}'), True),
        (SSEEvent(data='{"token": "a"}'), False),
        (SSEEvent(data='{"done": true}'), True),
        (SSEEvent(event="token", data='{"text": "a"}'), False),
        (SSEEvent(event="done", data="{}"), True),
        (SSEEvent(event="error", data="{}"), True),
        (SSEEvent(data="[DONE]"), False),
    ],
)
def test_is_terminal_knows_every_contract_shape(event: SSEEvent, terminal: bool) -> None:
    assert is_terminal(event) is terminal


def test_record_text_reads_both_token_shapes() -> None:
    record = record_of(
        SSEEvent(data='{"token": "Hel", "done": false}'),
        SSEEvent(event="token", data='{"text": "lo"}'),
        DONE,
    )
    assert record.text() == "Hello"
    assert record.names() == ["message", "token", "message"]


def test_one_terminal_event_passes_on_a_clean_end() -> None:
    assert assert_one_terminal_event(record_of(TOKEN, DONE)) == DONE


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (record_of(TOKEN, TOKEN), "without a terminal event"),
        (record_of(TOKEN, ERROR, DONE), "2 terminal events"),
        (record_of(DONE, TOKEN), "events after the terminal one"),
        (record_of(TOKEN, DONE, tail='data: {"token"'), "ended inside an event"),
    ],
)
def test_one_terminal_event_fails_on_each_broken_end(record: StreamRecord, why: str) -> None:
    with pytest.raises(AssertionError, match=why):
        assert_one_terminal_event(record)


def test_no_event_after_terminal() -> None:
    assert_no_event_after_terminal(record_of(TOKEN, DONE))
    assert_no_event_after_terminal(record_of(TOKEN))  # no end at all is another assertion's job
    with pytest.raises(AssertionError, match="after the terminal"):
        assert_no_event_after_terminal(record_of(DONE, TOKEN))
    with pytest.raises(AssertionError, match="bytes after"):
        assert_no_event_after_terminal(record_of(DONE, tail="data: x"))


def test_error_event_assertion_rejects_a_leak() -> None:
    leaky = SSEEvent(
        data='{"error": "Error code: 503 chatcmpl-abc", "code": "provider_error", '
        '"request_id": "r", "done": true}'
    )
    with pytest.raises(AssertionError, match="leaks"):
        assert_error_event(record_of(TOKEN, leaky))
    with pytest.raises(AssertionError, match="not an error"):
        assert_error_event(record_of(TOKEN, DONE))
    assert assert_error_event(record_of(TOKEN, ERROR), "provider_error")["code"] == "provider_error"


# --- collecting from a live server -----------------------------------------------------------


def test_collect_records_events_arrivals_and_raw_bytes(serve) -> None:
    url = serve(ticking_app.app)
    record = collect_sync(f"{url}/ticks?count=5&interval_ms=30", method="GET")
    assert_streaming_headers(record)
    assert [e.event for e in record.events] == ["tick"] * 5 + ["done"]
    assert [d.get("n") for d in record.data()[:5]] == [1, 2, 3, 4, 5]
    assert record.raw.startswith(b"id: 1\nevent: tick\ndata: {")
    assert record.arrivals == sorted(record.arrivals)
    # Five sleeps of 30 ms between the request and the last tick: a floor, never a ceiling.
    assert record.arrivals[4] - record.started_at >= 0.15
    assert_one_terminal_event(record)


def test_collect_async_twin_and_stop_after(serve) -> None:
    url = serve(ticking_app.app)
    record = asyncio.run(
        collect(f"{url}/ticks?count=50&interval_ms=10", method="GET", stop_after=3)
    )
    assert record.stopped_early and len(record.events) == 3
    with pytest.raises(AssertionError, match="stopped reading"):
        assert_one_terminal_event(record)


def test_collect_stop_when_and_on_event(serve) -> None:
    url = serve(ticking_app.app)
    seen: list[tuple[str, float]] = []
    record = collect_sync(
        f"{url}/ticks?count=50&interval_ms=5",
        method="GET",
        stop_when=lambda event: event.id == "4",
        on_event=lambda event, at: seen.append((event.data, at)),
    )
    assert record.stopped_early and [e.id for e in record.events] == ["1", "2", "3", "4"]
    assert seen == list(zip([e.data for e in record.events], record.arrivals, strict=True))
    assert record.items == record.events  # no comments on this stream


@pytest.mark.parametrize("use_async", [False, True])
def test_an_endless_stream_fails_the_test_instead_of_hanging_it(serve, use_async: bool) -> None:
    url = f"{serve(ticking_app.app)}/ticks?count=1000&interval_ms=20"
    with pytest.raises(StreamTimeoutError) as caught:
        if use_async:
            asyncio.run(collect(url, method="GET", timeout=0.5))
        else:
            collect_sync(url, method="GET", timeout=0.5)
    assert caught.value.record.events, "what arrived before the bound is kept for the report"


def test_headers_assertion_fails_on_a_json_error(mock, serve) -> None:
    url = serve(chat_app.app)
    mock.script(fault=Fault.http_error(429, retry_after=2))
    record = collect_sync(f"{url}/chat/stream", PROMPT)
    with pytest.raises(AssertionError, match="expected HTTP 200"):
        assert_streaming_headers(record)
    assert_http_error(record, 429, "rate_limited")
    assert record.headers["retry-after"] == "2"


# --- each assertion passes on the good app and fails on its broken twin ----------------------


def test_incremental_passes_on_the_relay(mock, serve) -> None:
    url = serve(chat_app.app)
    mock.set_timing(ttft_ms=0, token_interval_ms=15)
    record = collect_sync(f"{url}/chat/stream", PROMPT)
    assert_incremental(record, mock.last_request(), mock=mock)


def test_incremental_fails_on_a_buffering_middleware(mock, serve) -> None:
    url = serve(buffering_pitfall.app)
    mock.set_timing(ttft_ms=0, token_interval_ms=15)
    record = collect_sync(f"{url}/chat/stream", PROMPT)
    # Everything a naive test looks at is right...
    assert_streaming_headers(record)
    assert_one_terminal_event(record)
    assert record.text() == mock.last_request().reply_text
    # ...and only the timing shows the bug.
    with pytest.raises(AssertionError, match="buffers the stream"):
        assert_incremental(record, mock.last_request(), mock=mock)


def test_terminal_assertions_pass_on_the_relay_error(mock, serve) -> None:
    url = serve(chat_app.app)
    mock.script(fault=Fault.error_event(after_tokens=3))
    record = collect_sync(f"{url}/chat/stream", PROMPT)
    assert_no_event_after_terminal(record)
    assert_error_event(record, "provider_error")


def test_terminal_assertion_fails_on_an_app_silent_after_an_error(mock, serve) -> None:
    url = serve(silent_error_pitfall.app)
    mock.script(fault=Fault.error_event(after_tokens=3))
    record = collect_sync(f"{url}/chat/stream", PROMPT)
    assert len(record.events) == 3  # the three tokens, then nothing
    with pytest.raises(AssertionError, match="without a terminal event"):
        assert_one_terminal_event(record)


def test_upstream_cancelled_passes_on_the_relay(mock, serve) -> None:
    url = serve(chat_app.app)
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    collect_sync(f"{url}/chat/stream", PROMPT, stop_after=3)
    observed = assert_upstream_cancelled(mock)
    assert observed.tokens_sent < observed.tokens_planned


def test_upstream_cancelled_fails_on_a_leaking_relay(mock, serve) -> None:
    url = serve(leaky_upstream_pitfall.app)
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    collect_sync(f"{url}/chat/stream", PROMPT, stop_after=3)
    with pytest.raises(AssertionError, match="not closed"):
        assert_upstream_cancelled(mock)


def test_many_concurrent_streams(mock, serve) -> None:
    url = serve(chat_app.app)
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    payloads = [{"message": f"Question number {i}?"} for i in range(20)]
    records = asyncio.run(collect_many(f"{url}/chat/stream", payloads))
    replies = {r.messages[-1]["content"]: r.reply_text for r in mock.requests}
    for payload, record in zip(payloads, records, strict=True):
        assert_one_terminal_event(record)
        assert record.text() == replies[payload["message"]]
    # Concurrent, not one after another: the relay opened every provider stream before the
    # provider finished any of them (the mock's own clock, so load cannot make this flaky).
    observed = mock.requests
    assert len(observed) == 20
    assert max(o.started_at for o in observed) < min(o.finished_at or 0 for o in observed)
