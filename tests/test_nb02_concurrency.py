"""Concurrency and disconnect checks for notebook 02's relays, each shown to catch its pitfall.

Generous by design: `served_one_after_another` compares how many streams overlapped, not absolute
times, and the disconnect checks read what the mock observed, so load on the machine cannot flip
them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lessons.toolkit.concurrency import (
    disconnect_after_first_token,
    measure_streams,
    upstream_after_disconnect,
)
from lessons.two_providers import def_generator_pitfall, sync_client_pitfall
from lessons.two_providers.app import app as combined_app

HELLO = "Hello! How can I help you today?"
LONG_PROMPT = "What is machine learning?"  # a canned reply of about 70 tokens

LESSON_ROUTES = [
    ("/relay/stream", {"provider": "openai"}),
    ("/relay/stream", {"provider": "anthropic"}),
    ("/anthropic/stream", {}),
    ("/responses/stream", {}),
]
ROUTE_IDS = ["relay-openai", "relay-anthropic", "anthropic-stream", "responses-stream"]


@pytest.mark.parametrize(("path", "extra"), LESSON_ROUTES, ids=ROUTE_IDS)
def test_lesson_relays_serve_10_streams_side_by_side(
    mock: Any, serve: Any, path: str, extra: dict
) -> None:
    mock.set_timing(ttft_ms=50, token_interval_ms=25)
    url = serve(combined_app)
    run = asyncio.run(measure_streams(url, path, {"message": "Say hello.", **extra}, 10))
    assert all(s.status == 200 and s.text == HELLO for s in run.streams)
    assert not run.served_one_after_another, run.summary()
    assert not run.most_waited_for_a_whole_reply, run.summary()


def test_the_measurement_flags_the_sync_client_pitfall(mock: Any, serve: Any) -> None:
    mock.set_timing(ttft_ms=50, token_interval_ms=25)
    url = serve(sync_client_pitfall.app)
    run = asyncio.run(measure_streams(url, "/chat/stream", {"message": "Say hello."}, 10))
    assert all(s.status == 200 and s.text == HELLO for s in run.streams)
    assert run.served_one_after_another, run.summary()
    # Most clients saw a first token only after another client's whole reply had been sent.
    assert run.most_waited_for_a_whole_reply


def test_def_generator_pitfall_does_not_block_the_loop(mock: Any, serve: Any) -> None:
    mock.set_timing(ttft_ms=50, token_interval_ms=25)
    url = serve(def_generator_pitfall.app)
    run = asyncio.run(measure_streams(url, "/chat/stream", {"message": "Say hello."}, 10))
    assert all(s.text == HELLO for s in run.streams)
    assert not run.served_one_after_another, run.summary()


@pytest.mark.parametrize(("path", "extra"), LESSON_ROUTES, ids=ROUTE_IDS)
def test_disconnect_cancels_the_upstream(mock: Any, serve: Any, path: str, extra: dict) -> None:
    mock.set_timing(ttft_ms=0, token_interval_ms=20)
    url = serve(combined_app)
    first = asyncio.run(disconnect_after_first_token(url, path, {"message": LONG_PROMPT, **extra}))
    assert first == "Machine"
    observed = upstream_after_disconnect(mock)
    assert observed.outcome == "client_disconnected"
    assert observed.tokens_sent < observed.tokens_planned / 2


def test_the_disconnect_check_flags_the_def_generator_pitfall(mock: Any, serve: Any) -> None:
    mock.set_timing(ttft_ms=0, token_interval_ms=10)
    url = serve(def_generator_pitfall.app)
    first = asyncio.run(disconnect_after_first_token(url, "/chat/stream", {"message": LONG_PROMPT}))
    assert first == "Machine"
    observed = upstream_after_disconnect(mock)
    # Nobody was listening, yet the provider generated (and would bill) the whole reply.
    assert observed.outcome == "completed"
    assert observed.tokens_sent == observed.tokens_planned
