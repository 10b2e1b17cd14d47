"""Notebook 03's lesson apps against the mock, over a live server: text, events, usage, errors."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from lessons.chain_streaming import app as combined
from lessons.chain_streaming import (
    buffered_chain_pitfall,
    chain_events,
    chain_stream,
    langchain_stream,
)
from lessons.mock_providers import OPENAI_ORGANIZATION, OPENAI_PROJECT, Fault
from lessons.mock_providers.replies import CANNED_REPLIES
from lessons.relay_core.errors import MESSAGES, ErrorCode
from lessons.toolkit.testkit import StreamRecord, collect_sync

QUESTION = "What is machine learning?"
ANSWER = CANNED_REPLIES["what is machine learning?"]
ROUTES = ["/langchain/stream", "/chain/stream", "/chain/events"]
MODULES = {
    "/langchain/stream": langchain_stream,
    "/chain/stream": chain_stream,
    "/chain/events": chain_events,
}


@dataclass(frozen=True)
class Reply:
    """What the test kit recorded, under the httpx.Response names these tests read."""

    record: StreamRecord

    @property
    def status_code(self) -> int:
        return self.record.status

    @property
    def headers(self) -> httpx.Headers:
        return self.record.headers

    @property
    def text(self) -> str:
        return self.record.raw.decode()

    def json(self) -> Any:
        return self.record.body_json()


def post(url: str, body: Any) -> Reply:
    return Reply(collect_sync(url, body, timeout=20))


def events_of(response: Reply) -> list[Any]:
    return list(response.record.events)


def text_of(route: str, response: Reply) -> str:
    events = events_of(response)
    if route == "/langchain/stream":
        return "".join(e.json().get("token", "") for e in events)
    return "".join(e.json()["text"] for e in events if e.event == "token")


def assert_streaming_headers(response: Reply) -> None:
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"


# --- the happy path: exact text, shapes on the wire, usage ---------------------------------


def test_langchain_stream_relays_the_exact_text_in_the_original_shapes(mock, serve) -> None:
    url = serve(langchain_stream.create_app())
    response = post(f"{url}/langchain/stream", {"message": QUESTION})
    assert_streaming_headers(response)
    blocks = response.text.split("\n\n")
    assert blocks[-1] == "", "the stream must end with a complete event"
    assert all(block.startswith("data: ") and "\n" not in block for block in blocks[:-1])
    payloads = [json.loads(block.removeprefix("data: ")) for block in blocks[:-1]]
    *tokens, done = payloads
    assert all(set(p) == {"token"} and p["token"] for p in tokens)
    assert "".join(p["token"] for p in tokens) == ANSWER
    observed = mock.last_request()
    assert len(tokens) == observed.tokens_sent > 5, "tokens must be relayed as they come"
    assert done == {
        "done": True,
        "usage": {"input_tokens": done["usage"]["input_tokens"], "output_tokens": len(tokens)},
    }
    assert done["usage"]["input_tokens"] > 0
    # A system prompt goes first, as in the original lesson.
    assert observed.messages[0]["role"] == "system"
    assert observed.stream is True


def test_chain_stream_relays_the_exact_text_as_named_events(mock, serve) -> None:
    url = serve(chain_stream.create_app())
    response = post(f"{url}/chain/stream", {"message": QUESTION})
    assert_streaming_headers(response)
    assert response.text.startswith("id: 1\nevent: token\ndata: {")
    events = events_of(response)
    assert [e.event for e in events] == ["token"] * (len(events) - 1) + ["done"]
    assert [e.id for e in events] == [str(i) for i in range(1, len(events) + 1)]
    assert text_of("/chain/stream", response) == ANSWER
    assert len(events) - 1 == mock.last_request().tokens_sent


def test_chain_events_sends_tokens_then_the_step_then_usage(mock, serve) -> None:
    url = serve(chain_events.create_app())
    response = post(f"{url}/chain/events", {"message": QUESTION})
    assert_streaming_headers(response)
    events = events_of(response)
    names = [e.event for e in events]
    tokens = names.count("token")
    assert names == ["start"] + ["token"] * tokens + ["step", "usage", "done"]
    assert [e.id for e in events] == [str(i) for i in range(1, len(events) + 1)]
    start = events[0].json()
    assert start["provider"] == "openai" and start["model"] == "gpt-4o-mini"
    assert start["request_id"] == response.headers["x-request-id"]
    assert text_of("/chain/events", response) == ANSWER
    assert events[-3].json() == {
        "name": "answer_stats",
        "output": {"words": len(ANSWER.split()), "characters": len(ANSWER)},
    }
    observed = mock.last_request()
    usage = events[-2].json()
    assert usage["output_tokens"] == tokens == observed.tokens_sent
    assert usage["input_tokens"] > 0
    assert events[-1].json() == {"finish_reason": "stop"}


def test_the_combined_app_serves_all_three_routes(mock, serve) -> None:
    url = serve(combined.create_app())
    for route in ROUTES:
        response = post(f"{url}{route}", {"message": "Say hello."})
        assert_streaming_headers(response)
        assert text_of(route, response) == CANNED_REPLIES["say hello."]


def test_tokens_reach_the_client_before_the_reply_ends(mock, serve) -> None:
    mock.set_timing(ttft_ms=0, token_interval_ms=40)
    url = serve(combined.create_app())
    for route in ROUTES:
        record = collect_sync(f"{url}{route}", {"message": "Say hello."}, timeout=20)
        arrivals = [
            at - record.started_at
            for event, at in zip(record.events, record.arrivals, strict=True)
            if "token" in event.data or "text" in event.data
        ]
        # 10 pieces 40 ms apart: a buffering relay would deliver them all at once at the end.
        assert arrivals[-1] - arrivals[0] > 0.15, (route, arrivals)


def test_the_buffered_pitfall_sends_only_the_stats_at_the_end(mock, serve) -> None:
    url = serve(buffered_chain_pitfall.create_app())
    response = post(f"{url}/chain/buffered", {"message": QUESTION})
    events = events_of(response)
    assert [e.event for e in events] == ["output", "done"]
    assert events[0].json() == {"words": len(ANSWER.split()), "characters": len(ANSWER)}


# --- invalid input ------------------------------------------------------------------------


INVALID_BODIES = [
    {},
    {"message": ""},
    {"message": "   "},
    {"message": "x" * 32_001},
    {"message": 3},
    {"message": "hi", "unknown": 1},
]


def test_invalid_bodies_get_422_and_never_reach_the_provider(mock, serve) -> None:
    url = serve(combined.create_app())
    for route in ROUTES:
        for body in INVALID_BODIES:
            response = post(f"{url}{route}", body)
            assert response.status_code == 422, (route, body, response.text)
            assert response.json()["detail"][0]["msg"]
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
    url = serve(MODULES[route].create_app())
    for status, expected, code in BEFORE_STREAM_FAILURES:
        retry_after = 7 if status == 429 else None
        marker = f"FAIL{status}"
        mock.script(fault=Fault.http_error(status, retry_after=retry_after), prompt_contains=marker)
        response = post(f"{url}{route}", {"message": f"{marker} please"})
        assert response.status_code == expected, (status, response.text)
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        request_id = body["error"]["request_id"]
        assert body == {
            "error": {"code": code, "message": MESSAGES[code], "request_id": request_id}
        }
        assert request_id == response.headers["x-request-id"]
        if retry_after is not None:
            assert response.headers["retry-after"] == "7"
        # Nothing of the provider's own error body reaches the client.
        assert OPENAI_ORGANIZATION not in response.text and OPENAI_PROJECT not in response.text
        assert "mock-openai-key" not in response.text


def test_retries_happen_only_before_the_stream_and_are_invisible(mock, serve) -> None:
    # The provider asks for a retry: the SDK (max_retries=2) tries again before our first byte.
    mock.script(
        fault=Fault.http_error(429, retry_after=0, should_retry=True),
        prompt_contains="RETRYME",
        times=1,
    )
    url = serve(combined.create_app())
    response = post(f"{url}/chain/events", {"message": "RETRYME " + QUESTION})
    assert_streaming_headers(response)
    assert [e.event for e in events_of(response)][-1] == "done"
    assert len(mock.requests) == 2


def test_an_unreachable_provider_is_a_503(monkeypatch, serve) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    url = serve(combined.create_app(max_retries=0))
    for route in ROUTES:
        response = post(f"{url}{route}", {"message": "hello"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == ErrorCode.PROVIDER_UNREACHABLE


# --- errors after the stream started: one terminal error event -----------------------------


def _terminal_error(route: str, response: Reply) -> dict[str, Any]:
    events = events_of(response)
    last = events[-1].json()
    if route == "/langchain/stream":
        assert all("error" not in e.json() for e in events[:-1])
        assert last["done"] is True
        return {"code": last["code"], "message": last["error"], "request_id": last["request_id"]}
    assert [e.event for e in events].count("error") == 1
    assert events[-1].event == "error"
    assert "done" not in [e.event for e in events]
    return last


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
]


@pytest.mark.parametrize("route", ROUTES)
def test_a_failure_mid_stream_is_one_terminal_error_event(mock, serve, route) -> None:
    url = serve(MODULES[route].create_app())
    for marker, fault, codes in MID_STREAM_FAILURES:
        mock.script(fault=fault, prompt_contains=marker)
        response = post(f"{url}{route}", {"message": f"{marker} {QUESTION}"})
        assert_streaming_headers(response)
        error = _terminal_error(route, response)
        assert error["code"] in codes, (marker, error)
        assert error["message"] == MESSAGES[ErrorCode(error["code"])]
        assert error["request_id"] == response.headers["x-request-id"]
        streamed = text_of(route, response)
        assert streamed and len(streamed) < 60, "the tokens before the failure were relayed"


def test_a_stalled_provider_times_out_with_an_error_event(mock, serve) -> None:
    mock.script(fault=Fault.stall(after_tokens=2, seconds=5), prompt_contains="STALL")
    url = serve(langchain_stream.create_app(timeout=0.5, max_retries=0))
    started = time.monotonic()
    response = post(f"{url}/langchain/stream", {"message": "STALL " + QUESTION})
    assert time.monotonic() - started < 4
    assert _terminal_error("/langchain/stream", response)["code"] == ErrorCode.PROVIDER_TIMEOUT


# --- client disconnect cancels the upstream ------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_a_client_disconnect_cancels_the_provider_stream(mock, serve, route) -> None:
    mock.set_timing(ttft_ms=0, token_interval_ms=50)
    url = serve(MODULES[route].create_app())
    # Leave at the first token: the kit closes the connection there.
    collect_sync(
        f"{url}{route}",
        {"message": QUESTION},
        timeout=20,
        stop_when=lambda event: '"token"' in event.data or '"text"' in event.data,
    )
    observed = mock.last_request()
    mock.wait_until_finished(observed, timeout=5.0)
    observed = mock.last_request()
    assert observed.outcome == "client_disconnected"
    # The reply has ~60 pieces at 50 ms: stopping within a few proves the upstream was closed.
    assert observed.tokens_sent < observed.tokens_planned
    assert observed.tokens_sent < 20
