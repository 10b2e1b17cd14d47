"""Notebook 03's lesson app against the mock, over a live server: text, events, usage, errors."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from lessons.chain_streaming import buffered_chain_pitfall
from lessons.chain_streaming.app import create_app
from lessons.mock_providers import OPENAI_ORGANIZATION, OPENAI_PROJECT, Fault
from lessons.mock_providers.replies import CANNED_REPLIES
from lessons.relay_core import RelaySettings
from lessons.relay_core.errors import MESSAGES, ErrorCode
from lessons.toolkit.testkit import (
    StreamRecord,
    StreamTimeoutError,
    assert_error_event,
    assert_http_error,
    assert_incremental,
    assert_one_terminal_event,
    assert_streaming_headers,
    assert_upstream_cancelled,
    classify,
    collect_sync,
)

QUESTION = "What is machine learning?"
ANSWER = CANNED_REPLIES["what is machine learning?"]
ROUTES = ["/langchain/stream", "/chain/stream", "/chain/events"]


def post(url: str, body: Any, *, timeout: float = 20, **options: Any) -> StreamRecord:
    return collect_sync(url, body, timeout=timeout, **options)


def is_token(event: Any) -> bool:
    return classify(event).kind == "token"


def kinds(record: StreamRecord) -> list[str]:
    return [classify(event).kind for event in record.events]


# --- the happy path: exact text, shapes on the wire, usage ---------------------------------


def test_langchain_stream_relays_the_exact_text_as_token_events(mock, serve) -> None:
    url = serve(create_app())
    record = post(f"{url}/langchain/stream", {"message": QUESTION})
    assert_streaming_headers(record)
    blocks = record.raw.decode().split("\n\n")
    assert blocks[-1] == "", "the stream must end with a complete event"
    assert all(block.startswith("data: ") and "\n" not in block for block in blocks[:-1])
    payloads = [json.loads(block.removeprefix("data: ")) for block in blocks[:-1]]
    *tokens, done = payloads
    assert all(p == {"token": p["token"], "done": False} and p["token"] for p in tokens)
    assert "".join(p["token"] for p in tokens) == ANSWER
    observed = mock.last_request()
    assert len(tokens) == observed.tokens_sent > 5, "tokens must be relayed as they come"
    # The provider's own usage, in the done event: what it bills, not an estimate.
    assert done == {
        "token": "",
        "done": True,
        "usage": {"input_tokens": observed.input_tokens, "output_tokens": len(tokens)},
    }
    # The server's system prompt goes first.
    assert observed.messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    assert observed.stream is True


def test_chain_stream_relays_the_exact_text_as_named_events(mock, serve) -> None:
    url = serve(create_app())
    record = post(f"{url}/chain/stream", {"message": QUESTION})
    assert_streaming_headers(record)
    assert record.raw.startswith(b"id: 1\nevent: start\ndata: {")
    names = record.names()
    tokens = names.count("token")
    assert names == ["start"] + ["token"] * tokens + ["usage", "done"]
    assert [e.id for e in record.events] == [str(i) for i in range(1, len(names) + 1)]
    assert record.text() == ANSWER
    observed = mock.last_request()
    assert tokens == observed.tokens_sent
    usage, done = record.data()[-2:]
    assert usage == {"input_tokens": observed.input_tokens, "output_tokens": tokens}
    assert done["finish_reason"] == "stop"
    assert 0 < done["ttft_ms"] <= done["latency_ms"]


def test_chain_events_sends_tokens_then_the_step_then_usage(mock, serve) -> None:
    url = serve(create_app())
    record = post(f"{url}/chain/events", {"message": QUESTION})
    assert_streaming_headers(record)
    names = record.names()
    tokens = names.count("token")
    assert names == ["start"] + ["token"] * tokens + ["step", "usage", "done"]
    assert [e.id for e in record.events] == [str(i) for i in range(1, len(names) + 1)]
    start, *_, step, usage, done = record.data()
    assert start == {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "request_id": record.headers["x-request-id"],
    }
    assert record.text() == ANSWER
    assert step == {
        "name": "answer_stats",
        "output": {"words": len(ANSWER.split()), "characters": len(ANSWER)},
    }
    observed = mock.last_request()
    assert usage == {"input_tokens": observed.input_tokens, "output_tokens": tokens}
    assert tokens == observed.tokens_sent
    assert done["finish_reason"] == "stop"


def test_the_app_serves_all_three_routes(mock, serve) -> None:
    url = serve(create_app())
    for route in ROUTES:
        record = post(f"{url}{route}", {"message": "Say hello."})
        assert_streaming_headers(record)
        assert_one_terminal_event(record)
        assert kinds(record)[-1] == "done"
        assert record.text() == CANNED_REPLIES["say hello."]


def test_max_tokens_reaches_the_provider_and_its_finish_reason_the_client(mock, serve) -> None:
    url = serve(create_app())
    for route in ("/chain/stream", "/chain/events"):
        record = post(f"{url}{route}", {"message": QUESTION, "max_tokens": 5})
        assert mock.last_request().body["max_completion_tokens"] == 5
        assert record.names().count("token") == 5
        # Cut by the limit, but the provider said so: a complete reply, `done` with "length".
        assert record.names()[-1] == "done" and record.data()[-1]["finish_reason"] == "length"


def test_tokens_reach_the_client_before_the_provider_finishes(mock, serve) -> None:
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    url = serve(create_app())
    for route in ROUTES:
        record = post(f"{url}{route}", {"message": "Say hello."})
        # The mock's own clock: the first token arrived before the provider's last one left.
        assert_incremental(record, mock.last_request(), mock=mock, is_token=is_token)


def test_the_buffered_pitfall_sends_only_the_stats_at_the_end(mock, serve) -> None:
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    url = serve(buffered_chain_pitfall.create_app())
    record = post(f"{url}/chain/buffered", {"message": QUESTION})
    assert record.names() == ["start", "output", "done"]
    assert record.data()[1] == {"words": len(ANSWER.split()), "characters": len(ANSWER)}
    # Nothing of the answer streamed: the only output left after the provider had finished.
    observed = mock.wait_until_finished(mock.last_request())
    assert observed.finished_at is not None and record.arrivals[1] > observed.finished_at


# --- invalid input ------------------------------------------------------------------------


INVALID_BODIES = [
    {},
    {"message": ""},
    {"message": "   "},
    {"message": "x" * 32_001},
    {"message": 3},
    {"message": "hi", "unknown": 1},
    {"message": "hi", "max_tokens": 0},
    {"message": "hi", "max_tokens": 1_001},  # over the server's cap
]


def test_invalid_bodies_get_422_echo_nothing_and_never_reach_the_provider(mock, serve) -> None:
    url = serve(create_app())
    for route in ROUTES:
        for body in INVALID_BODIES:
            record = post(f"{url}{route}", body)
            error = assert_http_error(record, 422, "invalid_request")
            assert record.body_json()["detail"][0]["msg"], (route, body)
            assert error["request_id"] == record.headers["x-request-id"]
            assert b"xxxxxxxxxx" not in record.raw and b'unknown":1' not in record.raw
    assert mock.requests == []


# --- errors before the stream: HTTP statuses ----------------------------------------------


BEFORE_STREAM_FAILURES = [
    (429, 429, ErrorCode.RATE_LIMITED),
    (500, 502, ErrorCode.PROVIDER_ERROR),
    (503, 503, ErrorCode.PROVIDER_OVERLOADED),
    (401, 502, ErrorCode.PROVIDER_AUTH),
]


@pytest.mark.parametrize("route", ROUTES)
def test_provider_errors_before_the_stream_become_http_statuses(mock, serve, route) -> None:
    url = serve(create_app())
    for status, expected, code in BEFORE_STREAM_FAILURES:
        retry_after = 7 if status == 429 else None
        marker = f"FAIL{status}"
        mock.script(fault=Fault.http_error(status, retry_after=retry_after), prompt_contains=marker)
        record = post(f"{url}{route}", {"message": f"{marker} please"})
        error = assert_http_error(record, expected, code)
        assert record.headers["content-type"] == "application/json"
        assert error == {"code": code, "message": MESSAGES[code], "request_id": error["request_id"]}
        assert error["request_id"] == record.headers["x-request-id"]
        if retry_after is not None:
            assert record.headers["retry-after"] == "7"
        # Nothing of the provider's own error body reaches the client.
        text = record.raw.decode()
        assert OPENAI_ORGANIZATION not in text and OPENAI_PROJECT not in text
        assert "mock-openai-key" not in text


def test_retries_happen_only_before_the_stream_and_are_invisible(mock, serve) -> None:
    # The provider asks for a retry: the SDK (max_retries=2) tries again before our first byte.
    mock.script(
        fault=Fault.http_error(429, retry_after=0, should_retry=True),
        prompt_contains="RETRYME",
        times=1,
    )
    url = serve(create_app())
    record = post(f"{url}/chain/events", {"message": "RETRYME " + QUESTION})
    assert_streaming_headers(record)
    assert record.names()[-1] == "done"
    assert len(mock.requests) == 2


def test_an_unreachable_provider_is_a_503(monkeypatch, serve) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    url = serve(create_app(max_retries=0))
    for route in ROUTES:
        record = post(f"{url}{route}", {"message": "hello"})
        assert_http_error(record, 503, ErrorCode.PROVIDER_UNREACHABLE)


# --- errors after the stream started: one terminal error event -----------------------------


MID_STREAM_FAILURES = [
    (
        "SERVERERR",
        Fault.error_event(after_tokens=3, kind="server_error"),
        {ErrorCode.PROVIDER_ERROR},
    ),
    (
        "OVERLOADED",
        Fault.error_event(after_tokens=3, kind="overloaded"),
        {ErrorCode.PROVIDER_OVERLOADED, ErrorCode.PROVIDER_ERROR},
    ),
    ("DROPPED", Fault.drop(after_tokens=3), {ErrorCode.STREAM_INTERRUPTED}),
    # The provider's stream ends cleanly, but without its end marker: a reply cut short.
    ("ENDEARLY", Fault.end_early(after_tokens=3), {ErrorCode.STREAM_INTERRUPTED}),
]


@pytest.mark.parametrize("route", ROUTES)
def test_a_failure_mid_stream_is_one_terminal_error_event(mock, serve, route) -> None:
    url = serve(create_app())
    for marker, fault, codes in MID_STREAM_FAILURES:
        mock.script(fault=fault, prompt_contains=marker)
        record = post(f"{url}{route}", {"message": f"{marker} {QUESTION}"})
        assert_streaming_headers(record)
        error = assert_error_event(record)
        assert error["code"] in codes, (marker, error)
        assert kinds(record).count("done") == 0, (marker, record.summary())
        assert record.headers["x-request-id"] == error["request_id"]
        assert classify(record.events[-1]).message == MESSAGES[ErrorCode(error["code"])]
        assert kinds(record).count("token") == 3, "the tokens before the failure were relayed"


@pytest.mark.parametrize("route", ROUTES)
def test_a_reply_cut_short_is_never_done(mock, serve, route) -> None:
    # The LangChain-specific half of the lesson: `.astream` and `astream_events` end normally
    # when the provider's stream ends without its end marker. Only the finish reason (from the
    # chunks, the ModelEnd callback or on_chat_model_end) tells the core that it was cut.
    url = serve(create_app())
    mock.script(fault=Fault.end_early(after_tokens=5))
    record = post(f"{url}{route}", {"message": QUESTION})
    assert_error_event(record, ErrorCode.STREAM_INTERRUPTED)
    assert kinds(record).count("token") == 5 and ANSWER.startswith(record.text())


@pytest.mark.parametrize("route", ROUTES)
def test_a_silent_provider_ends_with_a_timeout_event(mock, serve, route) -> None:
    # The relay's own deadline for a silence between two pieces decides (its keep-alives go
    # out more often than that, so the client sees traffic while it waits).
    mock.script(fault=Fault.stall(after_tokens=2, seconds=5), prompt_contains="STALL")
    url = serve(create_app(RelaySettings(idle_timeout_s=0.3, keepalive_interval_s=0.2)))
    started = time.monotonic()
    record = post(f"{url}{route}", {"message": "STALL " + QUESTION})
    assert time.monotonic() - started < 3
    assert record.comments, "keep-alive comments during the silence"
    assert_error_event(record, ErrorCode.PROVIDER_TIMEOUT)
    assert_upstream_cancelled(mock)


def test_the_sdk_read_timeout_is_a_timeout_event_too(mock, serve) -> None:
    # A read timeout of the model's own client (a model_options override) maps the same way.
    mock.script(fault=Fault.stall(after_tokens=2, seconds=5), prompt_contains="STALL")
    url = serve(create_app(timeout=0.5, max_retries=0))
    started = time.monotonic()
    record = post(f"{url}/langchain/stream", {"message": "STALL " + QUESTION})
    assert time.monotonic() - started < 4
    assert_error_event(record, ErrorCode.PROVIDER_TIMEOUT)


# --- client disconnect cancels the upstream ------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_a_client_disconnect_cancels_the_provider_stream(mock, serve, route) -> None:
    mock.set_timing(ttft_ms=0, token_interval_ms=50)
    url = serve(create_app())
    # Leave at the first token: the kit closes the connection there.
    record = post(f"{url}{route}", {"message": QUESTION}, stop_when=is_token)
    assert record.stopped_early
    observed = assert_upstream_cancelled(mock)
    # The reply has 74 pieces at 50 ms: stopping within a few proves the upstream was closed.
    assert observed.tokens_sent < 20


@pytest.mark.parametrize("route", ROUTES)
def test_a_client_gone_before_the_first_token_cancels_the_provider(mock, serve, route) -> None:
    mock.set_timing(ttft_ms=3_000, token_interval_ms=10)
    url = serve(create_app())
    # The headers (and a start event) come when the provider answers, the first token 3 s
    # later: a client that gives up after 0.5 s of silence leaves before it.
    with pytest.raises(StreamTimeoutError) as caught:
        post(f"{url}{route}", {"message": QUESTION}, timeout=0.5)
    assert kinds(caught.value.record) in ([], ["start"])
    observed = assert_upstream_cancelled(mock)
    assert observed.tokens_sent == 0
