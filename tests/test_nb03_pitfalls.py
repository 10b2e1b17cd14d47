"""Notebook 03's traps and its first naive route really fail, and their fixes really fix them."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
import requests

from lessons.chain_streaming import (
    cached_client_pitfall,
    naive_route_pitfall,
    token_count_pitfall,
    usage_pitfall,
)
from lessons.chain_streaming.chat_model import build_chat_model, close_chat_model
from lessons.mock_providers import Fault
from lessons.toolkit.testkit import assert_one_terminal_event, collect_sync


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


# --- the first route, as tutorials write it ------------------------------------------------


def test_the_naive_route_streams_a_good_reply(mock, serve) -> None:
    url = serve(naive_route_pitfall.app)
    record = collect_sync(f"{url}/langchain/stream", {"message": "Say hello."})
    assert record.status == 200
    assert_one_terminal_event(record)
    assert record.text() == mock.last_request().reply_text
    # ...with neither of the headers that keep proxies from buffering or caching it.
    assert "x-accel-buffering" not in record.headers and "cache-control" not in record.headers


def test_the_naive_route_answers_200_to_a_rate_limit_then_breaks_off(mock, serve) -> None:
    url = serve(naive_route_pitfall.app)
    mock.script(fault=Fault.http_error(429, retry_after=3))
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", f"{url}/langchain/stream", json={"message": "hi"}) as response,
    ):
        # The status went out before the provider was asked: the 429 and its Retry-After are lost.
        assert response.status_code == 200
        assert "retry-after" not in response.headers
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()


def test_the_naive_route_reports_a_reply_cut_short_as_done(mock, serve) -> None:
    url = serve(naive_route_pitfall.app)
    mock.script(fault=Fault.end_early(after_tokens=3))
    record = collect_sync(f"{url}/langchain/stream", {"message": "Say hello."})
    assert record.text() == "Hello! How"
    assert record.data()[-1] == {"token": "", "done": True}, "a cut reply that reads as whole"
