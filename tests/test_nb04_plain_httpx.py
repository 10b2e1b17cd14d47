"""The relay's tests written with pytest, httpx and httpx-sse alone: patterns for any project.

Each test has a twin of the same name in tests/test_nb04_testing_streams.py (or, for the many
streams, tests/test_testkit.py) written with the workbook's test kit; notebook 04 shows them side
by side. The one piece of the workbook used here is the `mock` fixture, the fake provider (in your
project, your own fake provider, or a recorded one, takes its place). Async tests run with
anyio's pytest plugin, which comes with anyio (installed with httpx): no other plugin needed.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from httpx_sse import aconnect_sse, connect_sse

from lessons.mock_providers import Fault
from lessons.testing_streams.chat_app import create_app

PROMPT = {"message": "What is machine learning?"}
LEAKS = ("Traceback", "Error(", "chatcmpl-", "sk-", "mock-")  # never in what a client sees


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def relay_url(mock: Any) -> Iterator[str]:
    """The app under test in a real uvicorn server, on a free port, in a thread of its own.

    A real socket: streaming, disconnects and concurrency behave as in production. (It asks for
    `mock` first, so that the app's lifespan creates its client against the fake provider.)
    """
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/chat/stream"
    server.should_exit = True
    thread.join(timeout=10)


# --- the exact reply ------------------------------------------------------------------------


def test_relay_streams_the_exact_reply(mock: Any, relay_url: str) -> None:
    # httpx's timeout bounds each read, not the whole stream: pytest-timeout has to do that.
    with (
        httpx.Client(timeout=10) as client,
        connect_sse(client, "POST", relay_url, json=PROMPT) as source,
    ):
        response = source.response
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["x-request-id"].startswith("req_")
        events = [json.loads(sse.data) for sse in source.iter_sse()]
    observed = mock.last_request()
    assert observed.messages == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": PROMPT["message"]},
    ]
    *tokens, last = events
    assert all(event == {"token": event["token"], "done": False} for event in tokens)
    assert last == {"token": "", "done": True}
    assert "".join(event["token"] for event in tokens) == observed.reply_text


# --- incremental delivery -------------------------------------------------------------------


def test_relay_delivers_the_first_token_before_the_provider_finishes(
    mock: Any, relay_url: str
) -> None:
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    with (
        httpx.Client(timeout=10) as client,
        connect_sse(client, "POST", relay_url, json=PROMPT) as source,
    ):
        # time.monotonic() is the mock's clock too: the comparison needs no wall-clock bound.
        arrivals = [time.monotonic() for _ in source.iter_sse()]
    observed = mock.wait_until_finished(mock.last_request(), timeout=5)
    assert arrivals, "no event arrived"
    assert arrivals[0] < observed.finished_at, "the stream was buffered until the provider ended"


# --- errors ---------------------------------------------------------------------------------


MID_STREAM_FAILURES = [
    (Fault.error_event(after_tokens=3), "provider_error"),
    (Fault.error_event(after_tokens=2, kind="server_error"), "provider_error"),
    (Fault.drop(after_tokens=2), "stream_interrupted"),
    (Fault.end_early(after_tokens=2), "stream_interrupted"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("fault", "code"), MID_STREAM_FAILURES)
async def test_relay_ends_a_failed_stream_with_one_error_event(
    mock: Any, relay_url: str, fault: Fault, code: str
) -> None:
    mock.script(fault=fault)
    async with (
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "POST", relay_url, json=PROMPT) as source,
    ):
        assert source.response.status_code == 200
        events = [json.loads(sse.data) async for sse in source.aiter_sse()]
    *tokens, last = events
    assert all(event == {"token": event["token"], "done": False} for event in tokens)
    assert last["done"] is True and last["code"] == code
    assert last["request_id"] == source.response.headers["x-request-id"]
    assert not [marker for marker in LEAKS if marker in json.dumps(last)]


PROVIDER_ERRORS = [
    (429, 429, "rate_limited"),
    (401, 502, "provider_auth_failed"),
    (500, 502, "provider_error"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("status", "expected_status", "code"), PROVIDER_ERRORS)
async def test_relay_maps_provider_errors_before_the_stream(
    mock: Any, relay_url: str, status: int, expected_status: int, code: str
) -> None:
    mock.script(fault=Fault.http_error(status))
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(relay_url, json=PROMPT)
    assert response.status_code == expected_status
    assert "event-stream" not in response.headers["content-type"]
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert "mock" not in error["message"].lower()


# --- disconnects ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_relay_closes_the_upstream_when_the_client_leaves(mock: Any, relay_url: str) -> None:
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    async with (
        httpx.AsyncClient(timeout=10) as client,
        aconnect_sse(client, "POST", relay_url, json=PROMPT) as source,
    ):
        events = []
        async for sse in source.aiter_sse():
            events.append(sse)
            if len(events) == 3:
                break  # leaving the block closes the connection
    observed = mock.wait_until_finished(mock.last_request(), timeout=5)
    assert observed.outcome == "client_disconnected", observed.outcome
    assert observed.tokens_sent < observed.tokens_planned


# --- many streams at once -------------------------------------------------------------------


@pytest.mark.anyio
async def test_many_concurrent_streams(mock: Any, relay_url: str) -> None:
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    payloads = [{"message": f"Question number {i}?"} for i in range(20)]
    limits = httpx.Limits(max_connections=None)  # the default pool would queue some streams

    async def reply(client: httpx.AsyncClient, payload: dict[str, str]) -> str:
        async with aconnect_sse(client, "POST", relay_url, json=payload) as source:
            events = [json.loads(sse.data) async for sse in source.aiter_sse()]
        assert events[-1] == {"token": "", "done": True}
        return "".join(event["token"] for event in events)

    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        texts = await asyncio.gather(*(reply(client, payload) for payload in payloads))
    replies = {o.messages[-1]["content"]: o.reply_text for o in mock.requests}
    assert texts == [replies[payload["message"]] for payload in payloads]
    observed = mock.requests
    assert max(o.started_at for o in observed) < min(o.finished_at or 0 for o in observed)
