"""Notebook 03's traps really happen, and their fixes really fix them (against the mock)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import requests

from lessons.chain_streaming import cached_client_pitfall, token_count_pitfall, usage_pitfall
from lessons.chain_streaming.chat_model import build_chat_model, close_chat_model


def run_in_fresh_loop(coroutine_function: Any, *args: Any) -> Any:
    """Run on a new event loop in a new thread, as a second server or asyncio.run() would."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine_function(*args))
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=30)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


async def _usage(llm: Any) -> Any:
    usage = None
    try:
        async for chunk in llm.astream("Say hello."):
            usage = chunk.usage_metadata or usage
    finally:
        await close_chat_model(llm)
    return usage


def test_without_stream_usage_a_custom_base_url_gets_no_usage(mock) -> None:
    assert run_in_fresh_loop(lambda: _usage(usage_pitfall.build_chat_model_without_usage())) is None
    fixed = run_in_fresh_loop(lambda: _usage(build_chat_model()))
    assert fixed["output_tokens"] == mock.last_request().tokens_sent


def test_the_cached_default_client_breaks_on_the_next_event_loop(mock) -> None:
    # The cache is process-wide; whichever loop used it first, one of two consecutive loops fails.
    outcomes = []
    for _ in range(2):
        try:
            outcomes.append(run_in_fresh_loop(cached_client_pitfall.ask, "Say hello."))
        except RuntimeError as exc:
            outcomes.append(str(exc))
    assert "Event loop is closed" in outcomes


def test_a_model_per_loop_with_its_own_client_works_on_every_loop(mock) -> None:
    async def ask() -> str:
        llm = build_chat_model()
        try:
            return "".join([chunk.text async for chunk in llm.astream("Say hello.")])
        finally:
            await close_chat_model(llm)

    assert [run_in_fresh_loop(ask) for _ in range(3)] == ["Hello! How can I help you today?"] * 3


def test_get_num_tokens_needs_the_network(mock, monkeypatch, tmp_path) -> None:
    # Offline for certain: an empty tiktoken cache and a proxy on a port that refuses.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    llm = build_chat_model()
    with pytest.raises(requests.exceptions.ConnectionError):
        token_count_pitfall.count_tokens(llm, "How many tokens is this?")
