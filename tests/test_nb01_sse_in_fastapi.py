"""Notebook 01's lesson apps against the mock through a live server: the exact events, headers,
incremental delivery, real usage, the error contract, 422s and cleanup on disconnect."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from lessons.mock_providers import Fault
from lessons.sse_basics import app as combined
from lessons.sse_basics import chat_stream, native_events, stream_meta
from lessons.toolkit.sse_parser import SSEEvent
from lessons.toolkit.testkit import StreamRecord, assert_upstream_cancelled, collect_sync

PROMPT = "Say hello."
# The mock's canned reply to PROMPT, cut into the pieces it streams (its tokenizer is fixed).
PIECES = ["Hello", "!", " How", " can", " I", " help", " you", " today", "?"]
REPLY = "".join(PIECES)
# A prompt the mock answers with a long generated reply, for timing and disconnect tests.
LONG_PROMPT = "Tell me about event streams"
CANNED_LONG_PROMPT = "Explain streaming in one paragraph."

STREAM_HEADERS = {"content-type", "cache-control", "x-accel-buffering"}


@dataclass(frozen=True)
class Route:
    """One lesson route, and how to read its events as (kind, payload) pairs."""

    path: str
    create_app: Callable[[], FastAPI]

    def kind_of(self, event: SSEEvent) -> tuple[str, dict[str, Any]]:
        data = event.json()
        if self.path == "/chat/stream":
            if "error" in data:
                return "error", data
            return ("done" if data["done"] else "token"), data
        if self.path == "/chat/stream-meta":
            return data["event"], data
        return event.event, data

    def text_of(self, payload: dict[str, Any]) -> str:
        return payload["text"] if self.path == "/chat/events" else payload["token"]


ROUTES = [
    Route("/chat/stream", chat_stream.create_app),
    Route("/chat/stream-meta", stream_meta.create_app),
    Route("/chat/events", native_events.create_app),
]
route_param = pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.path)


@dataclass
class Received:
    record: StreamRecord  # status, headers, events with arrival times, raw bytes (the test kit)
    raw: str
    events: list[tuple[str, dict[str, Any]]]
    ids: list[str | None]
    first_token_at: float | None  # time.monotonic(), comparable with the mock's observations


def stream_route(url: str, route: Route, body: Any = None, **kwargs: Any) -> Received:
    """POST to the route and read its events as they arrive, recording the raw wire."""
    record = collect_sync(
        url + route.path, {"message": PROMPT} if body is None else body, timeout=10, **kwargs
    )
    if record.headers["content-type"].startswith("application/json"):
        return Received(record, record.raw.decode(), [], [], None)
    assert record.incomplete_tail is None, "the stream ended in the middle of an event"
    events = [route.kind_of(event) for event in record.events]
    token_arrivals = [
        at for (kind, _), at in zip(events, record.arrivals, strict=True) if kind == "token"
    ]
    return Received(
        record,
        record.raw.decode(),
        events,
        [event.id for event in record.events],
        token_arrivals[0] if token_arrivals else None,
    )


# --- the happy path ------------------------------------------------------------------------------


@route_param
def test_streams_the_exact_reply_with_streaming_headers(mock, serve, route: Route) -> None:
    got = stream_route(serve(route.create_app()), route)
    assert got.record.status == 200
    headers = got.record.headers
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"
    assert headers["x-request-id"].startswith("req_")
    kinds = [kind for kind, _ in got.events]
    tokens = [route.text_of(p) for kind, p in got.events if kind == "token"]
    assert tokens == PIECES
    assert kinds[-1] == "done" and kinds.count("done") == 1 and "error" not in kinds
    if route.path == "/chat/stream":
        assert kinds == ["token"] * len(PIECES) + ["done"]
        assert got.events[-1][1] == {"token": "", "done": True}
        # The original lesson's client reads exactly these lines.
        assert got.raw.startswith('data: {"token":"Hello","done":false}\n\n')
        assert got.raw.endswith('data: {"token":"","done":true}\n\n')
    elif route.path == "/chat/stream-meta":
        assert kinds == ["start"] + ["token"] * len(PIECES) + ["done"]
        assert got.events[0][1] == {"event": "start", "model": "gpt-4o-mini"}
        assert got.raw.startswith(
            'data: {"event":"start","model":"gpt-4o-mini"}\n\n'
            'data: {"event":"token","token":"Hello"}\n\n'
        )
    else:
        assert kinds == ["start"] + ["token"] * len(PIECES) + ["usage", "done"]
        start = got.events[0][1]
        assert start["provider"] == "openai" and start["model"] == "gpt-4o-mini"
        assert start["request_id"] == got.record.headers["x-request-id"]
        assert got.events[-1][1]["finish_reason"] == "stop"
        # One id per event, in order: a client can tell which event it saw last.
        assert got.ids == [str(n) for n in range(len(got.events))]
        assert 'event: token\ndata: {"text": "Hello"}\nid: 1\n\n' in got.raw
    request = mock.last_request()
    assert request.model == "gpt-4o-mini"
    assert request.messages[-1]["content"] == PROMPT


@route_param
def test_first_event_arrives_while_the_mock_is_still_generating(mock, serve, route: Route) -> None:
    # 93 pieces 10 ms apart: the mock needs about a second to generate the whole reply.
    mock.script(prompt_contains=CANNED_LONG_PROMPT, token_interval_ms=10)
    got = stream_route(serve(route.create_app()), route, {"message": CANNED_LONG_PROMPT})
    request = mock.wait_until_finished(mock.last_request(), timeout=5)
    assert got.first_token_at is not None and request.finished_at is not None
    # A buffering relay would deliver everything after the mock finished.
    assert got.first_token_at < request.finished_at, (
        f"first token reached the client {got.first_token_at - request.finished_at:.3f} s after "
        "the mock finished: the relay buffers"
    )


def test_stream_meta_reports_provider_usage_and_timings(mock, serve) -> None:
    route = ROUTES[1]
    mock.script(prompt_contains=PROMPT, ttft_ms=150)
    got = stream_route(serve(route.create_app()), route)
    done = got.events[-1][1]
    request = mock.last_request()
    # The provider's own completion_tokens, which the mock counts as the pieces it sent.
    assert done["tokens"] == request.tokens_sent == len(PIECES)
    assert set(done) == {"event", "tokens", "latency_ms", "ttft_ms"}
    # Time to first token includes the provider's 150 ms wait; latency covers the whole reply.
    assert 150 <= done["ttft_ms"] <= done["latency_ms"]
    assert mock.last_request().stream is True


def test_stream_meta_counts_usage_not_chunks(mock, serve) -> None:
    route = ROUTES[1]
    # A reply whose pieces differ from its chunks would expose a chunk counter; the mock's
    # usage is its own count, so it must reach the client exactly.
    got = stream_route(serve(route.create_app()), route, {"message": "What is machine learning?"})
    tokens = [p for kind, p in got.events if kind == "token"]
    assert got.events[-1][1]["tokens"] == mock.last_request().tokens_sent
    assert len(tokens) == mock.last_request().tokens_sent


def test_events_route_sends_usage_before_done(mock, serve) -> None:
    route = ROUTES[2]
    got = stream_route(serve(route.create_app()), route)
    usage = dict(got.events)["usage"]
    assert usage["output_tokens"] == mock.last_request().tokens_sent == len(PIECES)
    assert usage["input_tokens"] > 0
    done = got.events[-1][1]
    assert set(done) == {"finish_reason", "ttft_ms", "latency_ms"}
    assert 0 <= done["ttft_ms"] <= done["latency_ms"]


# --- the error contract --------------------------------------------------------------------------


BEFORE_STREAM_FAILURES = [
    # provider status -> relay status and code (a bad server key is not the client's fault)
    (429, 429, "rate_limited"),
    (503, 503, "provider_overloaded"),
    (500, 502, "provider_error"),
    (401, 502, "provider_auth_failed"),
]


@route_param
def test_provider_failure_before_the_stream_is_an_http_error(mock, serve, route: Route) -> None:
    url = serve(route.create_app())
    for status, expected_status, code in BEFORE_STREAM_FAILURES:
        retry_after = 7 if status == 429 else None
        mock.script(fault=Fault.http_error(status, retry_after=retry_after), times=1)
        got = stream_route(url, route)
        response = got.record
        assert response.status == expected_status, status
        assert response.headers["content-type"] == "application/json"
        body = json.loads(got.raw)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "request_id"}
        assert body["error"]["code"] == code
        assert body["error"]["request_id"] == response.headers["x-request-id"]
        if retry_after is not None:
            assert response.headers["retry-after"] == str(retry_after)
        # Nothing of the provider's own error reaches the client: a fixed text per code.
        lowered = got.raw.lower()
        for internal in ("org-", "error code", "mock", "sk-", "traceback", "type"):
            assert internal not in lowered, internal


@route_param
def test_provider_failure_mid_stream_is_one_terminal_error_event(mock, serve, route: Route) -> None:
    url = serve(route.create_app())
    # A connection cut without a finish reason is a truncated reply: an error, never "done".
    mock.script(fault=Fault.drop(after_tokens=2), times=1)
    got = stream_route(url, route)
    kinds = [kind for kind, _ in got.events]
    assert kinds[-1] == "error" and "done" not in kinds
    assert got.events[-1][1]["code"] == "stream_interrupted"

    mock.script(fault=Fault.error_event(after_tokens=3, kind="server_error"), times=1)
    got = stream_route(url, route)
    assert got.record.status == 200
    kinds = [kind for kind, _ in got.events]
    assert kinds.count("token") == 3
    assert kinds[-1] == "error" and kinds.count("error") == 1 and "done" not in kinds
    error = got.events[-1][1]
    assert error["code"] == "provider_error"
    message = error["error"] if route.path == "/chat/stream" else error["message"]
    assert message == "The model provider failed to produce a reply."
    assert error["request_id"] == got.record.headers["x-request-id"]
    if route.path == "/chat/stream":
        assert error["done"] is True
    # The raw wire ends with that event: nothing after it.
    assert got.raw.endswith("\n\n") and got.raw.rstrip("\n").rsplit("\n\n", 1)[-1].count("error")


# --- request validation --------------------------------------------------------------------------

INVALID_BODIES = {
    "empty message": ({"message": ""}, "at least 1 character"),
    "blank message": ({"message": "   "}, "non-whitespace"),
    "too long": ({"message": "x" * 32_001}, "at most 32000 characters"),
    "wrong type": ({"message": 42}, "valid string"),
    "missing": ({}, "Field required"),
    "unknown field": ({"message": "hi", "temperature": 2}, "Extra inputs are not permitted"),
}


@route_param
def test_invalid_bodies_get_422_with_a_readable_message(mock, serve, route: Route) -> None:
    url = serve(route.create_app()) + route.path
    with httpx.Client(timeout=10) as client:
        for case, (body, words) in INVALID_BODIES.items():
            response = client.post(url, json=body)
            assert response.status_code == 422, case
            assert words in response.json()["detail"][0]["msg"], case
        response = client.post(
            url, content=b'{"message": ', headers={"content-type": "application/json"}
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["msg"] == "JSON decode error"
    assert mock.requests == [], "an invalid body must not cost a provider call"


# --- disconnects ---------------------------------------------------------------------------------


@route_param
def test_client_disconnect_cancels_the_upstream_stream(mock, serve, route: Route) -> None:
    mock.script(prompt_contains=LONG_PROMPT, token_interval_ms=30)
    url = serve(route.create_app())
    # Leave after the first token: the kit closes the connection after that many events.
    first_token = 1 if route.path == "/chat/stream" else 2  # the others send `start` first
    record = collect_sync(url + route.path, {"message": LONG_PROMPT}, stop_after=first_token)
    assert route.kind_of(record.events[-1])[0] == "token"
    assert_upstream_cancelled(mock)
    request = mock.wait_until_finished(mock.last_request(), timeout=5)
    assert request.outcome == "client_disconnected"
    assert request.tokens_sent < request.tokens_planned


# --- the combined app and FastAPI's extras -------------------------------------------------------


def test_combined_app_serves_every_route(serve) -> None:
    url = serve(combined.create_app())
    for route in ROUTES:
        got = stream_route(url, route)
        assert [route.text_of(p) for kind, p in got.events if kind == "token"] == PIECES


def test_events_route_is_described_as_an_event_stream_in_openapi() -> None:
    operation = native_events.create_app().openapi()["paths"]["/chat/events"]["post"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert (
        operation["responses"]["429"]["content"]["application/json"]["example"]["error"]["code"]
        == "rate_limited"
    )
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ChatRequest"
    )
