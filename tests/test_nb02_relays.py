"""Notebook 02's relays against the mock over a live server: wire, text, usage, errors, 422s."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from lessons.mock_providers import Fault
from lessons.relay_core.errors import MESSAGES
from lessons.toolkit.sse_parser import SSEEvent, parse_sse
from lessons.toolkit.testkit import StreamRecord, collect_sync
from lessons.toolkit.testkit import assert_streaming_headers as kit_assert_streaming_headers
from lessons.two_providers import anthropic_stream, relay, responses_stream
from lessons.two_providers.app import app as combined_app

HELLO = "Hello! How can I help you today?"
HELLO_PIECES = ["Hello", "!", " How", " can", " I", " help", " you", " today", "?"]
STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def post_stream(url: str, path: str, body: dict[str, Any]) -> tuple[StreamRecord, str]:
    """POST through the test kit; the record, and the raw text that went over the wire."""
    record = collect_sync(url + path, body, timeout=30)
    return record, record.raw.decode()


def events_of(raw: str) -> list[SSEEvent]:
    return [item for item in parse_sse(raw) if isinstance(item, SSEEvent)]


def assert_streaming_headers(record: StreamRecord) -> None:
    kit_assert_streaming_headers(record)
    for name, value in STREAM_HEADERS.items():
        assert record.headers[name] == value


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_relay_streams_unified_events(mock: Any, serve: Any, provider: str) -> None:
    url = serve(combined_app)
    response, raw = post_stream(
        url, "/relay/stream", {"provider": provider, "message": "Say hello.", "system": "Be brief."}
    )
    assert_streaming_headers(response)
    events = events_of(raw)
    names = [e.event for e in events]
    assert names == ["start"] + ["token"] * len(HELLO_PIECES) + ["usage", "done"]
    assert [e.id for e in events] == [str(i) for i in range(1, len(events) + 1)]
    # The raw wire: every event is id, event, one data line, blank line.
    assert raw.startswith('id: 1\nevent: start\ndata: {"provider":"' + provider + '"')
    assert raw.endswith("\n\n") and "\nevent: done\ndata: {" in raw

    start = events[0].json()
    assert start["provider"] == provider
    assert start["model"] == (
        "gpt-4o-mini" if provider == "openai" else "claude-haiku-4-5-20251001"
    )
    assert start["request_id"] == response.headers["x-request-id"]
    assert [e.json()["text"] for e in events if e.event == "token"] == HELLO_PIECES

    observed = mock.last_request()
    assert observed.provider == provider
    assert events[-2].json() == {
        "input_tokens": observed.input_tokens,
        "output_tokens": len(HELLO_PIECES),
    }
    assert observed.input_tokens > 0
    done = events[-1].json()
    assert done["finish_reason"] == "stop"
    assert 0 <= done["ttft_ms"] <= done["latency_ms"]
    # The system prompt reached the provider in its own place (Anthropic's top-level `system`).
    assert "Be brief." in json.dumps(observed.system)


def test_relay_without_system_sends_none(mock: Any, serve: Any) -> None:
    url = serve(relay.app)
    response, raw = post_stream(url, "/relay/stream", {"provider": "anthropic", "message": "Hi"})
    assert response.status == 200
    assert events_of(raw)[-1].event == "done"
    assert "system" not in mock.last_request().body


def test_anthropic_stream_keeps_the_original_shape(mock: Any, serve: Any) -> None:
    url = serve(anthropic_stream.app)
    response, raw = post_stream(url, "/anthropic/stream", {"message": "Say hello."})
    assert_streaming_headers(response)
    events = events_of(raw)
    assert all(e.event == "message" for e in events)
    payloads = [e.json() for e in events]
    assert payloads[:-1] == [{"token": piece, "done": False} for piece in HELLO_PIECES]
    assert payloads[-1] == {"token": "", "done": True}
    assert raw.startswith('data: {"token":"Hello","done":false}\n\n')
    observed = mock.last_request()
    assert observed.endpoint == "messages"
    assert observed.system == "You are a helpful assistant."


def test_responses_stream_uses_the_responses_api(mock: Any, serve: Any) -> None:
    url = serve(responses_stream.app)
    response, raw = post_stream(url, "/responses/stream", {"message": "Say hello."})
    assert_streaming_headers(response)
    events = events_of(raw)
    assert [e.event for e in events] == ["start"] + ["token"] * 9 + ["usage", "done"]
    assert "".join(e.json()["text"] for e in events if e.event == "token") == HELLO
    observed = mock.last_request()
    assert observed.endpoint == "responses"
    assert events[-2].json() == {"input_tokens": observed.input_tokens, "output_tokens": 9}
    assert events[-1].json()["finish_reason"] == "stop"


# --- errors before the stream: an HTTP status and a JSON body, no stream ------------------------

ROUTES = [
    ("/relay/stream", {"provider": "openai", "message": "rate me"}),
    ("/relay/stream", {"provider": "anthropic", "message": "rate me"}),
    ("/anthropic/stream", {"message": "rate me"}),
    ("/responses/stream", {"message": "rate me"}),
]


@pytest.mark.parametrize(("path", "body"), ROUTES, ids=lambda v: str(v))
def test_429_before_the_stream_is_an_http_429(mock: Any, serve: Any, path: str, body: dict) -> None:
    mock.script(fault=Fault.http_error(429, retry_after=2), prompt_contains="rate me")
    url = serve(combined_app)
    response = httpx.post(f"{url}{path}", json=body, timeout=30)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["message"] == MESSAGES[error["code"]]
    assert error["request_id"] == response.headers["x-request-id"]
    assert mock.last_request().request_id not in response.text


def test_other_provider_errors_before_the_stream(mock: Any, serve: Any) -> None:
    url = serve(combined_app)
    expected = {
        401: (502, "provider_auth_failed"),
        500: (502, "provider_error"),
        529: (503, "provider_overloaded"),
    }
    for status, (relay_status, code) in expected.items():
        mock.reset()
        mock.script(fault=Fault.http_error(status), times=None)
        response = httpx.post(
            f"{url}/relay/stream", json={"provider": "anthropic", "message": "Hi"}, timeout=30
        )
        assert response.status_code == relay_status
        assert response.json()["error"]["code"] == code


# --- errors after the stream started: one terminal error event ----------------------------------


def _assert_terminal_error(event: SSEEvent, code: str, request_id: str) -> None:
    payload = event.json()
    assert payload == {"code": code, "message": MESSAGES[code], "request_id": request_id}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_overloaded_mid_stream_is_one_terminal_error(mock: Any, serve: Any, provider: str) -> None:
    mock.script(fault=Fault.error_event(after_tokens=3, kind="overloaded"))
    url = serve(combined_app)
    response, raw = post_stream(
        url, "/relay/stream", {"provider": provider, "message": "Say hello."}
    )
    events = events_of(raw)
    assert [e.event for e in events] == ["start", "token", "token", "token", "error"]
    # Anthropic names the error `overloaded_error`; OpenAI sends a generic `server_error`.
    code = "provider_overloaded" if provider == "anthropic" else "provider_error"
    _assert_terminal_error(events[-1], code, response.headers["x-request-id"])
    assert "Overloaded" not in raw  # the provider's own error text never reaches the client


def test_anthropic_stream_overloaded_mid_stream(mock: Any, serve: Any) -> None:
    mock.script(fault=Fault.error_event(after_tokens=2, kind="overloaded"))
    url = serve(anthropic_stream.app)
    response, raw = post_stream(url, "/anthropic/stream", {"message": "Say hello."})
    payloads = [e.json() for e in events_of(raw)]
    assert payloads[:2] == [{"token": "Hello", "done": False}, {"token": "!", "done": False}]
    assert payloads[2:] == [
        {
            "error": MESSAGES["provider_overloaded"],  # type: ignore[index]
            "code": "provider_overloaded",
            "request_id": response.headers["x-request-id"],
            "done": True,
        }
    ]


def test_responses_stream_error_mid_stream(mock: Any, serve: Any) -> None:
    mock.script(fault=Fault.error_event(after_tokens=2, kind="server_error"))
    url = serve(responses_stream.app)
    response, raw = post_stream(url, "/responses/stream", {"message": "Say hello."})
    events = events_of(raw)
    assert [e.event for e in events] == ["start", "token", "token", "error"]
    _assert_terminal_error(events[-1], "provider_error", response.headers["x-request-id"])


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_dropped_connection_is_stream_interrupted(mock: Any, serve: Any, provider: str) -> None:
    mock.script(fault=Fault.drop(after_tokens=4))
    url = serve(relay.app)
    response, raw = post_stream(
        url, "/relay/stream", {"provider": provider, "message": "Say hello."}
    )
    events = events_of(raw)
    assert [e.event for e in events] == ["start"] + ["token"] * 4 + ["error"]
    _assert_terminal_error(events[-1], "stream_interrupted", response.headers["x-request-id"])


def test_anthropic_stream_dropped_connection(mock: Any, serve: Any) -> None:
    mock.script(fault=Fault.drop(after_tokens=1))
    url = serve(anthropic_stream.app)
    _, raw = post_stream(url, "/anthropic/stream", {"message": "Say hello."})
    payloads = [e.json() for e in events_of(raw)]
    assert payloads[0] == {"token": "Hello", "done": False}
    assert payloads[-1]["code"] == "stream_interrupted" and payloads[-1]["done"] is True
    assert len(payloads) == 2


# --- invalid input: 422 with a readable message, and the provider is never called ---------------

INVALID = [
    ("/relay/stream", {"provider": "openai", "message": ""}),
    ("/relay/stream", {"provider": "openai", "message": "   "}),
    ("/relay/stream", {"provider": "openai", "message": "x" * 32_001}),
    ("/relay/stream", {"provider": "gemini", "message": "Hi"}),
    ("/relay/stream", {"message": "Hi"}),
    ("/relay/stream", {"provider": "openai", "message": "Hi", "system": "s" * 8_001}),
    ("/relay/stream", {"provider": "openai", "message": "Hi", "temperature": 2}),
    ("/anthropic/stream", {"message": ""}),
    ("/anthropic/stream", {"message": "Hi", "system": "s" * 8_001}),
    ("/responses/stream", {"message": 42}),
]


def test_invalid_input_is_422(mock: Any, serve: Any) -> None:
    url = serve(combined_app)
    for path, body in INVALID:
        response = httpx.post(f"{url}{path}", json=body, timeout=30)
        assert response.status_code == 422, (path, body)
        detail = response.json()["detail"]
        assert detail and all(isinstance(d["msg"], str) and d["msg"] for d in detail)
    assert mock.requests == []  # the provider was never called
