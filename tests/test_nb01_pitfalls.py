"""Notebook 01's two pitfalls do what their docstrings say, and the core's EventStream does not.

- naive_stream_pitfall.py (a StreamingResponse over a generator that calls the SDK): a 429
  becomes a 200 carrying the provider's text, a cut stream is called `done`, nothing is sent
  while the model is slow to start; a client that leaves is noticed (what it gets right).
- native_sse_pitfall.py (FastAPI's EventSourceResponse alone): no keep-alive before 15 s, a
  client that leaves before the provider answers is noticed only once it answers, a client that
  stops reading is waited for, a cut stream is called `done`; a failure raised in the generator
  is a 200 with an empty body.
"""

from __future__ import annotations

import time
from typing import Any

import fastapi.sse
import httpx

from lessons.mock_providers import OPENAI_ORGANIZATION, Fault
from lessons.relay_core import RelaySettings
from lessons.sse_basics import naive_stream_pitfall, native_sse_pitfall
from lessons.sse_basics.app import create_app
from lessons.toolkit.nb01_probes import leave_before_the_answer, stop_reading, uvicorn_errors
from lessons.toolkit.testkit import assert_upstream_cancelled, collect_sync

HELLO = {"message": "Say hello."}
LONG = {"message": "What is machine learning?"}


# --- the naive StreamingResponse -----------------------------------------------------------------


def test_naive_turns_a_provider_429_into_a_200_with_the_providers_text(
    mock: Any, serve: Any
) -> None:
    url = serve(naive_stream_pitfall.app) + "/chat/stream"
    mock.script(fault=Fault.http_error(429, retry_after=2), times=1)
    record = collect_sync(url, HELLO)
    assert record.status == 200 and "retry-after" not in record.headers
    [event] = record.data()
    assert event["done"] is True and "429" in event["error"]
    assert OPENAI_ORGANIZATION in event["error"], "the provider's own text reaches the client"


def test_naive_calls_a_stream_cut_short_done(mock: Any, serve: Any) -> None:
    url = serve(naive_stream_pitfall.app) + "/chat/stream"
    mock.script(fault=Fault.end_early(after_tokens=3), times=1)
    record = collect_sync(url, HELLO)
    assert record.data()[-1] == {"token": "", "done": True}
    assert record.text() == "Hello! How"  # three pieces of nine, reported as a whole reply


def test_naive_sends_nothing_while_the_model_is_slow_to_start(mock: Any, serve: Any) -> None:
    url = serve(naive_stream_pitfall.app) + "/chat/stream"
    mock.script(ttft_ms=600, times=1)
    record = collect_sync(url, HELLO)
    observed = mock.last_request()
    assert record.comments == []
    assert record.first_byte_at is not None and observed.first_token_at is not None
    # Not a byte of the body before the provider's first token.
    assert record.first_byte_at >= observed.first_token_at


def test_naive_does_close_the_upstream_when_the_client_leaves(mock: Any, serve: Any) -> None:
    url = serve(naive_stream_pitfall.app) + "/chat/stream"
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    collect_sync(url, LONG, stop_after=2)
    observed = assert_upstream_cancelled(mock)
    assert observed.finished_at is not None and observed.disconnected_at is not None
    assert observed.tokens_sent < 10


def test_naive_headers_are_right_and_a_healthy_stream_is_right(mock: Any, serve: Any) -> None:
    record = collect_sync(serve(naive_stream_pitfall.app) + "/chat/stream", HELLO)
    assert record.headers["content-type"].startswith("text/event-stream")
    assert record.headers["cache-control"] == "no-cache"
    assert record.headers["x-accel-buffering"] == "no"
    assert record.text() == "Hello! How can I help you today?"
    assert record.data()[-1] == {"token": "", "done": True}


# --- FastAPI's native EventSourceResponse alone --------------------------------------------------


def test_native_has_a_fixed_15_second_ping_so_a_slow_start_is_silent(mock: Any, serve: Any) -> None:
    assert fastapi.sse._PING_INTERVAL == 15.0  # a private module global, not a setting
    mock.script(ttft_ms=400, times=1)
    native = collect_sync(serve(native_sse_pitfall.app) + "/chat/events", HELLO)
    assert native.comments == []
    mock.script(ttft_ms=400, times=1)
    core = collect_sync(
        serve(create_app(RelaySettings(keepalive_interval_s=0.1))) + "/chat/events", HELLO
    )
    assert len(core.comments) >= 3


def test_native_notices_a_client_that_left_only_when_the_provider_answers(
    mock: Any, serve: Any
) -> None:
    native = leave_before_the_answer(
        serve(native_sse_pitfall.app) + "/chat/events", LONG, mock, stall_s=0.6
    )
    core = leave_before_the_answer(serve(create_app()) + "/chat/events", LONG, mock, stall_s=0.6)
    # The native relay waits in its dependency for the provider's answer, then hangs up.
    waited = native.provider_answered_after_ms - native.left_after_ms
    assert native.closed_after_ms > 0.7 * waited, native
    assert core.outcome == "client_disconnected" and core.tokens_sent == 0
    assert core.closed_after_ms < 0.5 * waited, core


def test_native_waits_for_a_client_that_stopped_reading(mock: Any, serve: Any) -> None:
    patient = stop_reading(serve(native_sse_pitfall.app) + "/chat/events", HELLO, mock, hold_s=0.8)
    # Still attached to the provider (which may have finished its reply into socket buffers).
    assert not patient.server_closed and patient.outcome != "client_disconnected", patient
    url = serve(create_app(RelaySettings(send_timeout_s=0.3))) + "/chat/events"
    with uvicorn_errors(expect=1) as errors:
        core = stop_reading(url, HELLO, mock, hold_s=0.8)
    # The core gives up on the reader without a last message (there is no one to send it to).
    assert errors == ["ASGI callable returned without completing response."]
    assert core.server_closed, core
    if core.outcome == "client_disconnected":
        assert core.upstream_closed_after_ms is not None and core.upstream_closed_after_ms < 750
    else:
        # The provider had already written its whole reply into the socket buffers between it
        # and the relay (how much they hold depends on the kernel): nothing was left to close.
        assert core.outcome == "completed" and core.tokens_sent == core.tokens_planned, core


def test_native_calls_a_stream_cut_short_done(mock: Any, serve: Any) -> None:
    mock.script(fault=Fault.end_early(after_tokens=2), times=1)
    record = collect_sync(serve(native_sse_pitfall.app) + "/chat/events", HELLO)
    assert record.names() == ["token", "token", "done"]


def test_native_dependency_makes_a_provider_failure_an_http_error(mock: Any, serve: Any) -> None:
    url = serve(native_sse_pitfall.app) + "/chat/events"
    mock.script(fault=Fault.http_error(429, retry_after=2), times=1)
    with uvicorn_errors(expect=1) as errors:
        record = collect_sync(url, HELLO)
    # An HTTP error, not a 200, but a plain 500: nothing maps the SDK's errors to the contract.
    assert record.status == 500 and record.raw == b"Internal Server Error"
    assert errors == ["Exception in ASGI application"]


def test_native_generator_runs_before_the_response_and_its_failure_is_an_empty_200(
    mock: Any, serve: Any
) -> None:
    url = serve(native_sse_pitfall.app) + "/chat/events-opened-inside"
    mock.script(fault=Fault.http_error(429, retry_after=2), times=1)
    with uvicorn_errors(expect=1) as errors:
        record = collect_sync(url, HELLO)
    assert record.status == 200 and record.events == [] and record.raw == b""
    assert errors == ["Exception in ASGI application"]
    # The 200 is sent without waiting for the generator's first event: with the provider silent
    # for 0.6 s before its answer, the headers arrive at once.
    mock.script(fault=Fault.stall(after_tokens=0, seconds=0.6, before_headers=True), times=1)
    with httpx.Client(timeout=5) as http, http.stream("POST", url, json=HELLO) as response:
        headers_at = time.monotonic()
        assert response.status_code == 200
        body = response.read()
    observed = mock.last_request()
    assert observed.started_at is not None and observed.first_token_at is not None
    assert headers_at < observed.first_token_at - 0.2
    assert body.endswith(b"event: done\ndata: {}\n\n")
