"""Notebook 01's lesson app against the mock through a live server: the exact events, headers,
incremental delivery, real usage, the error contract, 422s and cleanup on disconnect.

The three routes (/chat/stream, /chat/stream-meta, /chat/events) are one app,
`lessons.sse_basics.app`, built on the core: one server for the whole module, and each test
gets the mock with its rules and observations reset.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from lessons.mock_providers import OPENAI_ORGANIZATION, Fault, MockProviders
from lessons.relay_core.errors import MESSAGES
from lessons.sse_basics.app import create_app
from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.concurrency import private_mock
from lessons.toolkit.testkit import (
    StreamRecord,
    assert_error_event,
    assert_http_error,
    assert_incremental,
    assert_one_terminal_event,
    assert_streaming_headers,
    assert_upstream_cancelled,
    classify,
    collect_sync,
)

PROMPT = "Say hello."
# The mock's canned reply to PROMPT, cut into the pieces it streams (its tokenizer is fixed).
PIECES = ["Hello", "!", " How", " can", " I", " help", " you", " today", "?"]
REPLY = "".join(PIECES)
# A canned reply of 74 pieces, long enough for timing and disconnect tests.
LONG_PROMPT = "What is machine learning?"
ROUTES = ["/chat/stream", "/chat/stream-meta", "/chat/events"]
each_route = pytest.mark.parametrize("route", ROUTES)


@dataclass
class Lesson:
    mock: MockProviders
    url: str


@pytest.fixture(scope="module")
def lesson() -> Iterator[Lesson]:
    """One mock and one lesson app for the module (the app's clients are made at its start)."""
    with pytest.MonkeyPatch.context() as env, private_mock() as mock:
        for name in ("OPENAI_MODEL", "ANTHROPIC_MODEL", "RELAY_CLIENT_TOKENS"):
            env.delenv(name, raising=False)
        env.setenv("NO_PROXY", "127.0.0.1,localhost")
        with BackgroundServer(create_app()) as server:
            yield Lesson(mock, server.url)


@pytest.fixture
def mock(lesson: Lesson) -> MockProviders:
    """The module's mock, with no rules or observations left from another test."""
    lesson.mock.reset()
    return lesson.mock


@pytest.fixture
def url(lesson: Lesson, mock: MockProviders) -> str:
    return lesson.url


def stream(url: str, route: str, body: Any = None, **kwargs: Any) -> StreamRecord:
    return collect_sync(url + route, {"message": PROMPT} if body is None else body, **kwargs)


def kinds(record: StreamRecord) -> list[str]:
    return [classify(event).kind for event in record.events]


# --- the happy path ------------------------------------------------------------------------------


@each_route
def test_streams_the_exact_reply_with_streaming_headers(
    mock: MockProviders, url: str, route: str
) -> None:
    record = stream(url, route)
    assert_streaming_headers(record)
    assert record.headers["x-request-id"].startswith("req_")
    assert_one_terminal_event(record)
    assert [classify(e).text for e in record.events if classify(e).kind == "token"] == PIECES
    assert kinds(record)[-1] == "done"
    raw = record.raw.decode()
    if route == "/chat/stream":
        assert kinds(record) == ["token"] * len(PIECES) + ["done"]
        assert raw.startswith('data: {"token":"Hello","done":false}\n\n')
        assert raw.endswith('data: {"token":"","done":true}\n\n')
    elif route == "/chat/stream-meta":
        assert kinds(record) == ["start"] + ["token"] * len(PIECES) + ["done"]
        assert raw.startswith(
            'data: {"event":"start","model":"gpt-4o-mini"}\n\n'
            'data: {"event":"token","token":"Hello"}\n\n'
        )
    else:
        assert record.names() == ["start"] + ["token"] * len(PIECES) + ["usage", "done"]
        start = record.data()[0]
        assert start == {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "request_id": record.headers["x-request-id"],
        }
        assert record.data()[-1]["finish_reason"] == "stop"
        # Ids from 1, one per event: a client holding id n has seen exactly the first n events.
        assert [e.id for e in record.events] == [str(n) for n in range(1, len(record.events) + 1)]
        assert raw.startswith("id: 1\nevent: start\ndata: {")
        assert 'id: 2\nevent: token\ndata: {"text":"Hello"}\n\n' in raw
    request = mock.last_request()
    assert request.model == "gpt-4o-mini" and request.stream is True
    assert request.messages[-1]["content"] == PROMPT


@each_route
def test_the_first_token_arrives_while_the_mock_is_still_generating(
    mock: MockProviders, url: str, route: str
) -> None:
    # 74 pieces 5 ms apart: the mock needs more than a third of a second for the whole reply.
    mock.script(prompt_contains=LONG_PROMPT, token_interval_ms=5)
    record = stream(url, route, {"message": LONG_PROMPT})
    assert_incremental(
        record, mock.last_request(), mock=mock, is_token=lambda e: classify(e).kind == "token"
    )


def test_stream_meta_reports_the_providers_usage_and_timings(mock: MockProviders, url: str) -> None:
    mock.script(prompt_contains=LONG_PROMPT, ttft_ms=150)
    record = stream(url, "/chat/stream-meta", {"message": LONG_PROMPT})
    done = record.data()[-1]
    observed = mock.last_request()
    assert set(done) == {"event", "tokens", "latency_ms", "ttft_ms"}
    # The provider's own completion_tokens (the mock counts the pieces it sent), not a count of
    # the events relayed.
    assert done["tokens"] == observed.tokens_sent == observed.tokens_planned == 74
    # Time to first token includes the provider's 150 ms wait; latency covers the whole reply.
    assert 150 <= done["ttft_ms"] <= done["latency_ms"]


def test_stream_meta_tokens_are_the_providers_count_even_when_cut_by_max_tokens(
    mock: MockProviders, url: str
) -> None:
    record = stream(url, "/chat/stream-meta", {"message": LONG_PROMPT, "max_tokens": 5})
    assert record.data()[-1]["tokens"] == mock.last_request().tokens_sent == 5
    assert mock.last_request().body["max_completion_tokens"] == 5


def test_events_route_sends_usage_just_before_done(mock: MockProviders, url: str) -> None:
    record = stream(url, "/chat/events")
    usage = record.data()[-2]
    assert record.names()[-2:] == ["usage", "done"]
    observed = mock.last_request()
    assert usage == {"input_tokens": observed.input_tokens, "output_tokens": len(PIECES)}
    assert observed.input_tokens > 0
    done = record.data()[-1]
    assert set(done) == {"finish_reason", "ttft_ms", "latency_ms"}
    assert 0 <= done["ttft_ms"] <= done["latency_ms"]


def test_the_system_prompt_reaches_the_provider(mock: MockProviders, url: str) -> None:
    stream(url, "/chat/events", {"message": PROMPT, "system_prompt": "Be brief."})
    assert mock.last_request().system == "Be brief."
    stream(url, "/chat/stream", {"message": PROMPT})
    assert mock.last_request().system == "You are a helpful assistant."


# --- the error contract --------------------------------------------------------------------------

BEFORE_STREAM_FAILURES = [
    # provider status -> relay status and code (a bad server key is not the client's fault)
    (429, 429, "rate_limited"),
    (503, 503, "provider_overloaded"),
    (500, 502, "provider_error"),
    (401, 502, "provider_auth_failed"),
]


@each_route
def test_a_provider_failure_before_the_stream_is_an_http_error(
    mock: MockProviders, url: str, route: str
) -> None:
    for status, expected_status, code in BEFORE_STREAM_FAILURES:
        retry_after = 7 if status == 429 else None
        mock.script(fault=Fault.http_error(status, retry_after=retry_after), times=1)
        record = stream(url, route)
        error = assert_http_error(record, expected_status, code)
        assert record.headers["content-type"] == "application/json"
        assert set(record.body_json()) == {"error"}
        assert error["message"] == MESSAGES[code]  # type: ignore[index]
        assert error["request_id"] == record.headers["x-request-id"]
        if retry_after is not None:
            assert record.headers["retry-after"] == str(retry_after)
        # Nothing of the provider's own error reaches the client: a fixed text per code.
        assert OPENAI_ORGANIZATION not in record.raw.decode()
        assert mock.last_request().request_id not in record.raw.decode()


@each_route
@pytest.mark.parametrize(
    ("fault", "code", "tokens"),
    [
        (Fault.drop(after_tokens=2), "stream_interrupted", 2),
        # A clean end without the finish reason and [DONE] is a cut reply too, never `done`.
        (Fault.end_early(after_tokens=4), "stream_interrupted", 4),
        (Fault.error_event(after_tokens=3, kind="server_error"), "provider_error", 3),
    ],
    ids=["drop", "end_early", "error_event"],
)
def test_a_failure_mid_stream_is_one_terminal_error_event(
    mock: MockProviders, url: str, route: str, fault: Fault, code: str, tokens: int
) -> None:
    mock.script(fault=fault, times=1)
    record = stream(url, route)
    assert record.status == 200
    data = assert_error_event(record, code)
    assert kinds(record).count("token") == tokens and "done" not in kinds(record)
    message = data["error"] if route == "/chat/stream" else data["message"]
    assert message == MESSAGES[code]  # type: ignore[index]
    assert data["request_id"] == record.headers["x-request-id"]
    assert OPENAI_ORGANIZATION not in record.raw.decode()


# --- request validation --------------------------------------------------------------------------

INVALID_BODIES = {
    "empty message": ({"message": ""}, "at least 1 character"),
    "blank message": ({"message": "   "}, "non-whitespace"),
    "too long": ({"message": "x" * 32_001}, "at most 32000 characters"),
    "wrong type": ({"message": 42}, "valid string"),
    "missing": ({}, "Field required"),
    "unknown field": ({"message": "hi", "temperature": 2}, "Extra inputs are not permitted"),
    "max_tokens over the cap": ({"message": "hi", "max_tokens": 1_001}, "at most 1000"),
}


@each_route
def test_invalid_bodies_get_a_422_that_echoes_nothing(
    mock: MockProviders, url: str, route: str
) -> None:
    with httpx.Client(timeout=10) as client:
        for case, (body, words) in INVALID_BODIES.items():
            response = client.post(url + route, json=body)
            assert response.status_code == 422, case
            assert response.json()["error"]["code"] == "invalid_request", case
            assert words in response.json()["detail"][0]["msg"], case
            assert "x" * 100 not in response.text, "the input is echoed back"
        response = client.post(
            url + route, content=b'{"message": ', headers={"content-type": "application/json"}
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["msg"] == "JSON decode error"
    assert mock.requests == [], "an invalid body must not cost a provider call"


# --- disconnects ---------------------------------------------------------------------------------


@each_route
def test_a_client_that_leaves_mid_reply_cancels_the_upstream(
    mock: MockProviders, url: str, route: str
) -> None:
    mock.script(prompt_contains=LONG_PROMPT, token_interval_ms=30)
    record = stream(
        url, route, {"message": LONG_PROMPT}, stop_when=lambda e: classify(e).kind == "token"
    )
    assert record.stopped_early and classify(record.events[-1]).text == "Machine"
    observed = assert_upstream_cancelled(mock)
    assert observed.tokens_sent < observed.tokens_planned / 2


@each_route
def test_a_client_that_leaves_before_the_provider_answers_cancels_the_call(
    mock: MockProviders, url: str, route: str
) -> None:
    # The provider sends not even its headers for a second; the client gives up after 0.2 s.
    mock.script(fault=Fault.stall(after_tokens=0, seconds=1.0, before_headers=True), times=1)
    with pytest.raises(httpx.ReadTimeout), httpx.Client(timeout=0.2) as client:
        client.post(url + route, json={"message": LONG_PROMPT})
    observed = mock.wait_until_finished(mock.last_request(), timeout=5)
    assert observed.outcome == "client_disconnected" and observed.tokens_sent == 0
    # Noticed while the provider was still silent, not when it answered a second in.
    assert observed.finished_at is not None and observed.started_at is not None
    assert observed.finished_at - observed.started_at < 0.8


# --- the app's description -----------------------------------------------------------------------


def test_every_route_is_described_as_an_event_stream_in_openapi() -> None:
    paths = create_app().openapi()["paths"]
    for route in ROUTES:
        operation = paths[route]["post"]
        assert "text/event-stream" in operation["responses"]["200"]["content"], route
        body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert body.endswith("MessageRequest" if route == "/chat/stream-meta" else "ChatRequest")


def test_the_server_log_has_the_details_the_client_does_not_get(
    mock: MockProviders, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    mock.script(fault=Fault.http_error(429, retry_after=2), times=1)
    with caplog.at_level("INFO", logger="lessons.relay"):
        record = stream(url, "/chat/stream")
    request_id = record.headers["x-request-id"]
    lines = [r.getMessage() for r in caplog.records if request_id in r.getMessage()]
    failure = next(line for line in lines if line.startswith("stream_failed_before_start"))
    assert "code=rate_limited" in failure and "RateLimitError" in failure
    assert OPENAI_ORGANIZATION in failure  # the provider's own text, for the operators
    assert json.dumps(record.body_json()).count(OPENAI_ORGANIZATION) == 0
