"""Notebook 02's relays against the mock over a live server: wire, text, usage, errors, 422s.

/anthropic/stream, /responses/stream and /relay/stream are one app, `lessons.two_providers.app`:
one server for the whole module; each test gets the mock with its rules and observations reset.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from lessons.mock_providers import ANTHROPIC_ORGANIZATION, OPENAI_ORGANIZATION, Fault, MockProviders
from lessons.relay_core.errors import MESSAGES
from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.concurrency import private_mock
from lessons.toolkit.testkit import (
    StreamRecord,
    assert_error_event,
    assert_http_error,
    assert_one_terminal_event,
    assert_streaming_headers,
    collect_sync,
)
from lessons.two_providers.app import create_app
from lessons.two_providers.cost import Prices, reply_cost

HELLO = "Hello! How can I help you today?"
HELLO_PIECES = ["Hello", "!", " How", " can", " I", " help", " you", " today", "?"]
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5-20251001"}
PROVIDERS = ["openai", "anthropic"]
# Every route of the app, with a body that selects its provider.
ROUTES = [
    ("/relay/stream", {"provider": "openai"}),
    ("/relay/stream", {"provider": "anthropic"}),
    ("/anthropic/stream", {}),
    ("/responses/stream", {}),
]
ROUTE_IDS = ["relay-openai", "relay-anthropic", "anthropic-stream", "responses-stream"]
each_route = pytest.mark.parametrize(("path", "extra"), ROUTES, ids=ROUTE_IDS)


@dataclass
class Lesson:
    mock: MockProviders
    url: str
    app: FastAPI


@pytest.fixture(scope="module")
def lesson() -> Iterator[Lesson]:
    with pytest.MonkeyPatch.context() as env, private_mock() as mock:
        for name in ("OPENAI_MODEL", "ANTHROPIC_MODEL", "RELAY_CLIENT_TOKENS"):
            env.delenv(name, raising=False)
        env.setenv("NO_PROXY", "127.0.0.1,localhost")
        app = create_app()
        with BackgroundServer(app) as server:
            yield Lesson(mock, server.url, app)


@pytest.fixture
def mock(lesson: Lesson) -> MockProviders:
    lesson.mock.reset()
    return lesson.mock


@pytest.fixture
def url(lesson: Lesson, mock: MockProviders) -> str:
    return lesson.url


def post(url: str, path: str, body: dict[str, Any]) -> StreamRecord:
    return collect_sync(url + path, body, timeout=30)


def accounted(lesson: Lesson, request_id: str, timeout_s: float = 2.0) -> Any:
    """The stream's usage record: written when the stream ends, just after its last byte."""
    deadline = time.monotonic() + timeout_s
    while (record := lesson.app.state.usage.find(request_id)) is None:
        assert time.monotonic() < deadline, f"no usage record for {request_id}"
        time.sleep(0.005)
    return record


def leaks(record: StreamRecord) -> list[str]:
    raw = record.raw.decode()
    return [marker for marker in (OPENAI_ORGANIZATION, ANTHROPIC_ORGANIZATION) if marker in raw]


# --- the happy path ------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_relay_streams_the_same_named_events_for_both_providers(
    mock: MockProviders, url: str, provider: str
) -> None:
    body = {"provider": provider, "message": "Say hello.", "system": "Be brief."}
    record = post(url, "/relay/stream", body)
    assert_streaming_headers(record)
    assert_one_terminal_event(record)
    assert record.names() == ["start"] + ["token"] * len(HELLO_PIECES) + ["usage", "done"]
    assert [e.id for e in record.events] == [str(i) for i in range(1, len(record.events) + 1)]
    raw = record.raw.decode()
    assert raw.startswith('id: 1\nevent: start\ndata: {"provider":"' + provider + '"')
    data = record.data()
    assert data[0] == {
        "provider": provider,
        "model": MODELS[provider],
        "request_id": record.headers["x-request-id"],
    }
    assert [d["text"] for d in data[1:-2]] == HELLO_PIECES
    observed = mock.last_request()
    assert observed.provider == provider
    assert data[-2] == {"input_tokens": observed.input_tokens, "output_tokens": 9}
    assert observed.input_tokens > 0
    assert data[-1]["finish_reason"] == "stop"
    assert 0 <= data[-1]["ttft_ms"] <= data[-1]["latency_ms"]
    # The system prompt reached the provider in its own place (Anthropic's top-level `system`).
    assert observed.system == "Be brief."


def test_relay_without_a_system_prompt_sends_the_servers(mock: MockProviders, url: str) -> None:
    record = post(url, "/relay/stream", {"provider": "anthropic", "message": "Hi"})
    assert record.names()[-1] == "done"
    assert mock.last_request().body["system"] == "You are a helpful assistant."


def test_anthropic_stream_sends_token_events(mock: MockProviders, url: str) -> None:
    record = post(url, "/anthropic/stream", {"message": "Say hello."})
    assert_streaming_headers(record)
    assert all(e.event == "message" and e.id is None for e in record.events)
    assert record.data()[:-1] == [{"token": piece, "done": False} for piece in HELLO_PIECES]
    assert record.data()[-1] == {"token": "", "done": True}
    assert record.raw.startswith(b'data: {"token":"Hello","done":false}\n\n')
    observed = mock.last_request()
    assert observed.endpoint == "messages"
    assert observed.system == "You are a helpful assistant."


def test_responses_stream_uses_the_responses_api(mock: MockProviders, url: str) -> None:
    record = post(url, "/responses/stream", {"message": "Say hello.", "system_prompt": "Be terse."})
    assert_streaming_headers(record)
    assert record.names() == ["start"] + ["token"] * 9 + ["usage", "done"]
    assert record.text() == HELLO
    observed = mock.last_request()
    assert observed.endpoint == "responses"
    assert observed.system == "Be terse."  # sent as `instructions`
    assert record.data()[-2] == {"input_tokens": observed.input_tokens, "output_tokens": 9}
    assert record.data()[-1]["finish_reason"] == "stop"


@each_route
def test_max_tokens_reaches_each_provider_under_its_own_name(
    mock: MockProviders, url: str, path: str, extra: dict[str, Any]
) -> None:
    record = post(url, path, {"message": "What is machine learning?", "max_tokens": 16, **extra})
    observed = mock.last_request()
    name = {"chat.completions": "max_completion_tokens", "responses": "max_output_tokens"}.get(
        observed.endpoint, "max_tokens"
    )
    assert observed.body[name] == 16
    assert observed.tokens_sent == 16 and record.text()
    if record.names()[-1] == "done" and "finish_reason" in record.data()[-1]:
        assert record.data()[-1]["finish_reason"] == "length"


@each_route
def test_every_stream_is_accounted_with_the_providers_usage(
    lesson: Lesson, mock: MockProviders, url: str, path: str, extra: dict[str, Any]
) -> None:
    record = post(url, path, {"message": "Say hello.", **extra})
    usage = accounted(lesson, record.headers["x-request-id"])
    observed = mock.last_request()
    assert not usage.estimated and usage.outcome == "completed"
    assert (usage.input_tokens, usage.output_tokens) == (observed.input_tokens, 9)
    assert usage.provider == observed.provider and usage.model == observed.model


def test_a_cut_stream_is_accounted_with_an_estimate(
    lesson: Lesson, mock: MockProviders, url: str
) -> None:
    mock.script(fault=Fault.drop(after_tokens=4), times=1)
    record = post(url, "/relay/stream", {"provider": "anthropic", "message": "Say hello."})
    usage = accounted(lesson, record.headers["x-request-id"])
    # No final count arrived: the pieces relayed, and an estimate of the prompt, are billed.
    assert usage.outcome == "error" and usage.estimated
    assert usage.output_tokens == 4 and usage.input_tokens > 0


def test_reply_cost_prices_input_and_output_at_their_own_rates() -> None:
    from lessons.relay_core import Usage

    prices = Prices(input_per_mtok=1.0, output_per_mtok=5.0)
    assert reply_cost(Usage(1_000_000, 0), prices) == 1.0
    assert reply_cost(Usage(0, 1_000_000), prices) == 5.0
    assert reply_cost(Usage(3_000, 200), prices) == pytest.approx(0.004)


# --- errors before the stream: an HTTP status and a JSON body, no stream ------------------------


@each_route
def test_a_429_before_the_stream_is_an_http_429(
    mock: MockProviders, url: str, path: str, extra: dict[str, Any]
) -> None:
    mock.script(fault=Fault.http_error(429, retry_after=2), prompt_contains="rate me")
    record = post(url, path, {"message": "rate me", **extra})
    error = assert_http_error(record, 429, "rate_limited")
    assert record.headers["retry-after"] == "2"
    assert record.headers["content-type"].startswith("application/json")
    assert error["message"] == MESSAGES["rate_limited"]  # type: ignore[index]
    assert error["request_id"] == record.headers["x-request-id"]
    assert mock.last_request().request_id not in record.raw.decode() and not leaks(record)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_other_provider_errors_before_the_stream(
    mock: MockProviders, url: str, provider: str
) -> None:
    expected = {
        401: (502, "provider_auth_failed"),
        500: (502, "provider_error"),
        529 if provider == "anthropic" else 503: (503, "provider_overloaded"),
    }
    for status, (relay_status, code) in expected.items():
        mock.script(fault=Fault.http_error(status), times=1)
        record = post(url, "/relay/stream", {"provider": provider, "message": "Hi"})
        assert_http_error(record, relay_status, code)
        assert not leaks(record)


# --- errors after the stream started: one terminal error event ----------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_overloaded_mid_stream_is_one_terminal_error(
    mock: MockProviders, url: str, provider: str
) -> None:
    mock.script(fault=Fault.error_event(after_tokens=3, kind="overloaded"), times=1)
    record = post(url, "/relay/stream", {"provider": provider, "message": "Say hello."})
    assert record.names() == ["start", "token", "token", "token", "error"]
    # Anthropic names the error `overloaded_error`; OpenAI sends a generic `server_error`.
    code = "provider_overloaded" if provider == "anthropic" else "provider_error"
    data = assert_error_event(record, code)
    assert data == {
        "code": code,
        "message": MESSAGES[code],  # type: ignore[index]
        "request_id": record.headers["x-request-id"],
    }
    assert "Overloaded" not in record.raw.decode() and not leaks(record)


def test_anthropic_stream_overloaded_mid_stream(mock: MockProviders, url: str) -> None:
    mock.script(fault=Fault.error_event(after_tokens=2, kind="overloaded"), times=1)
    record = post(url, "/anthropic/stream", {"message": "Say hello."})
    assert record.data() == [
        {"token": "Hello", "done": False},
        {"token": "!", "done": False},
        {
            "error": MESSAGES["provider_overloaded"],  # type: ignore[index]
            "code": "provider_overloaded",
            "request_id": record.headers["x-request-id"],
            "done": True,
        },
    ]


def test_responses_stream_error_mid_stream(mock: MockProviders, url: str) -> None:
    mock.script(fault=Fault.error_event(after_tokens=2, kind="server_error"), times=1)
    record = post(url, "/responses/stream", {"message": "Say hello."})
    assert record.names() == ["start", "token", "token", "error"]
    assert_error_event(record, "provider_error")


@each_route
@pytest.mark.parametrize(
    "fault", [Fault.drop(after_tokens=4), Fault.end_early(after_tokens=4)], ids=["drop", "end"]
)
def test_a_stream_cut_short_ends_with_stream_interrupted_never_done(
    mock: MockProviders, url: str, path: str, extra: dict[str, Any], fault: Fault
) -> None:
    mock.script(fault=fault, times=1)
    record = post(url, path, {"message": "Say hello.", **extra})
    assert record.text() == "Hello! How can"
    assert_error_event(record, "stream_interrupted")


# --- invalid input: 422 with a readable message, and the provider is never called ---------------

INVALID = [
    ("/relay/stream", {"provider": "openai", "message": ""}),
    ("/relay/stream", {"provider": "openai", "message": "   "}),
    ("/relay/stream", {"provider": "openai", "message": "x" * 32_001}),
    ("/relay/stream", {"provider": "gemini", "message": "Hi"}),
    ("/relay/stream", {"message": "Hi"}),
    ("/relay/stream", {"provider": "openai", "message": "Hi", "system": "s" * 8_001}),
    ("/relay/stream", {"provider": "openai", "message": "Hi", "temperature": 2}),
    ("/relay/stream", {"provider": "anthropic", "message": "Hi", "max_tokens": 0}),
    ("/relay/stream", {"provider": "anthropic", "message": "Hi", "max_tokens": 5_000}),
    ("/anthropic/stream", {"message": ""}),
    ("/anthropic/stream", {"message": "Hi", "system": "s" * 8_001}),
    ("/responses/stream", {"message": 42}),
]


def test_invalid_input_is_a_422_and_costs_no_provider_call(mock: MockProviders, url: str) -> None:
    with httpx.Client(timeout=30) as client:
        for path, body in INVALID:
            response = client.post(f"{url}{path}", json=body)
            assert response.status_code == 422, (path, body)
            assert response.json()["error"]["code"] == "invalid_request"
            detail = response.json()["detail"]
            assert detail and all(isinstance(d["msg"], str) and d["msg"] for d in detail)
            assert "s" * 100 not in response.text and "x" * 100 not in response.text
    assert mock.requests == []  # the provider was never called


def test_the_openapi_description_names_each_body_and_the_event_stream() -> None:
    paths = create_app().openapi()["paths"]
    for path, model in [
        ("/relay/stream", "RelayRequest"),
        ("/anthropic/stream", "AnthropicRequest"),
        ("/responses/stream", "ChatRequest"),
    ]:
        operation = paths[path]["post"]
        assert "text/event-stream" in operation["responses"]["200"]["content"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert schema.endswith(model), json.dumps(schema)
