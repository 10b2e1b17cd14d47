"""Checkers for notebook 02's exercises: an adapter and a bug fix against the mock's real streams,
and a measurement judged by whether it tells a fast relay from a slow one."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from anthropic import AsyncAnthropic
from fastapi import APIRouter, FastAPI
from openai import AsyncOpenAI

from lessons.relay_core import (
    AnthropicClient,
    EventStream,
    Finish,
    MessageRequest,
    NamedEvents,
    OpenAIClient,
    Reasoning,
    RelayContext,
    RelaySettings,
    Token,
    Usage,
    anthropic_events,
    create_relay_app,
    model_name,
    openai_chat_events,
    openai_responses_events,
)
from lessons.sse_basics.app import create_app as create_chat_app
from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.concurrency import private_mock
from lessons.toolkit.exercises import NotYet
from lessons.toolkit.testkit import collect_sync

PROMPTS = ("Say hello.", "Explain streaming in one paragraph.")
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


async def _empty() -> AsyncIterator[Any]:
    return
    yield


async def _require_async_generator(adapter: Callable[[Any], Any]) -> None:
    produced = adapter(_empty())
    if inspect.iscoroutine(produced):
        await produced  # an untouched stub raises NotImplementedError here
    if not inspect.isasyncgen(produced):
        raise NotYet(
            "the adapter must be an async generator (`async def` with `yield` inside), "
            f"got {type(produced).__name__}"
        )
    await produced.aclose()


# --- thinking_event -----------------------------------------------------------------------------


class _ThinkRequest(MessageRequest):
    thinking: bool = True
    tools: bool = False


def _request(body: _ThinkRequest, max_tokens: int) -> dict[str, Any]:
    args: dict[str, Any] = {
        "model": model_name("anthropic"),
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": body.message}],
    }
    if body.thinking:
        args["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    if body.tools:
        args["tools"] = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER}]
    return args


def _thinking_app(adapter: Callable[[Any], Any]) -> FastAPI:
    router = APIRouter()

    @router.post("/think", response_class=EventStream)
    async def think(body: _ThinkRequest, relay: RelayContext, anthropic: AnthropicClient) -> Any:
        args = _request(body, relay.max_tokens(body.max_tokens))
        return relay.stream(
            anthropic.messages.create(**args, stream=True),
            adapter,
            NamedEvents(),
            provider="anthropic",
        )

    # Room for Anthropic's thinking budget (at least 1,024 tokens, within max_tokens).
    settings = RelaySettings(default_max_tokens=2_000, max_tokens_cap=4_000)
    return create_relay_app(
        title="exercise", routers=[router], settings=settings, providers=("anthropic",)
    )


async def _thinking_text(body: _ThinkRequest) -> str:
    """The model's thinking for this request, as the lesson's adapter reads it."""
    async with AsyncAnthropic(max_retries=0) as client:
        stream = await client.messages.create(
            **_request(body, body.max_tokens or 2000), stream=True
        )
        items = [item async for item in anthropic_events(stream)]
    return "".join(i.text for i in items if isinstance(i, Reasoning))


def _runs(names: list[str]) -> str:
    """The event names with repeats counted: "start, thinking x26, token x9, usage, done"."""
    runs: list[list[Any]] = []
    for name in names:
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    return ", ".join(name if count == 1 else f"{name} x{count}" for name, count in runs)


def _outline(names: list[str]) -> list[str]:
    """Runs of tokens and tool-call pieces collapsed: the shape of the stream, not its length."""
    out: list[str] = []
    for name in names:
        if not (out and out[-1] == name and name in ("token", "tool_call")):
            out.append(name)
    return out


async def check_thinking_event(with_thinking: Callable[[Any], Any]) -> None:
    await _require_async_generator(with_thinking)
    cases = [
        ("Say hello.", {}, ["start", "thinking", "token", "usage", "done"]),
        ("Say hello.", {"thinking": False}, ["start", "token", "usage", "done"]),
        (
            "What is the weather in Paris?",
            {"tools": True},
            ["start", "thinking", "token", "tool_call", "usage", "done"],
        ),
        # Cut by max_tokens while it was still thinking: no text, then the usage.
        ("Say hello.", {"max_tokens": 3}, ["start", "thinking", "usage", "done"]),
    ]
    with private_mock(), BackgroundServer(_thinking_app(with_thinking)) as server:
        for message, extra, outline in cases:
            body = _ThinkRequest(message=message, **extra)
            record = await asyncio.to_thread(
                collect_sync, server.url + "/think", body.model_dump(exclude_none=True)
            )
            what = f"for {message!r} with {extra or 'thinking on'}"
            names = record.names()
            if _outline(names) != outline:
                raise NotYet(
                    f"{what}, expected the events {', '.join(outline)} (tokens and tool-call "
                    f"pieces in runs), got {_runs(names)}"
                )
            ids = [e.id for e in record.events]
            if ids != [str(n) for n in range(1, len(ids) + 1)]:
                raise NotYet(f"{what}, the ids should be 1, 2, 3, ... got {ids}")
            if "thinking" in names:
                data = record.data()[names.index("thinking")]
                expected = await _thinking_text(body)
                if data != {"text": expected}:
                    shown = json.dumps(data)[:120]
                    raise NotYet(
                        f"{what}, the thinking event should be {{'text': <the whole "
                        f"thinking, {len(expected)} characters>}}, got {shown}"
                    )
            if record.data()[-1].get("finish_reason") != (
                "length"
                if "max_tokens" in extra
                else ("tool_calls" if "tools" in extra else "stop")
            ):
                raise NotYet(f"{what}, the stream ended with {record.data()[-1]}")


# --- responses_bugs -----------------------------------------------------------------------------


async def _collect(adapter: Callable[[Any], Any], stream: Any) -> list[Any]:
    try:
        return [event async for event in adapter(stream)]
    finally:
        await stream.close()


def _kept(events: list[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, Token | Usage | Finish)]


async def check_responses_bugs(adapt_responses: Callable[[Any], Any]) -> None:
    """The learner's adapter against the lesson's on real Responses streams from a mock."""
    await _require_async_generator(adapt_responses)
    with private_mock():
        async with AsyncOpenAI(max_retries=0) as client:
            cases = [(prompt, None) for prompt in PROMPTS] + [(PROMPTS[1], 16)]
            for prompt, limit in cases:
                extra = {"max_output_tokens": limit} if limit else {}
                options = {"model": "gpt-4o-mini", "input": prompt, "stream": True, **extra}
                expected = _kept(
                    await _collect(
                        openai_responses_events, await client.responses.create(**options)
                    )
                )
                got = _kept(
                    await _collect(adapt_responses, await client.responses.create(**options))
                )
                what = f"for {prompt!r}" + (f" with max_output_tokens={limit}" if limit else "")
                want_text = "".join(e.text for e in expected if isinstance(e, Token))
                got_text = "".join(e.text for e in got if isinstance(e, Token))
                if got_text != want_text:
                    raise NotYet(f"{what} the tokens join to {got_text!r}, expected {want_text!r}")
                if got[-2:] != expected[-2:]:
                    raise NotYet(
                        f"{what} the stream should end with {expected[-2:]}, got {got[-2:]}"
                    )
                if got != expected:
                    tokens = sum(isinstance(e, Token) for e in expected)
                    raise NotYet(
                        f"{what} the text is right, but in {len(got) - 2} piece(s) instead of "
                        f"{tokens}: a client must get each piece as the provider sends it"
                    )


# --- relay_delay --------------------------------------------------------------------------------

HOLD_S = 0.12  # what the slow relay adds before it passes the first token on
PROVIDER_WAIT_MS = 100  # the mock's time to the first token, which the delay must not include


def _slow_app() -> FastAPI:
    """A relay that holds the first token for HOLD_S: what a slow middleware or a blocking call
    in the path would do."""

    async def slow_events(chunks: Any) -> AsyncIterator[Any]:
        held = False
        async for item in openai_chat_events(chunks):
            if isinstance(item, Token) and not held:
                await asyncio.sleep(HOLD_S)
                held = True
            yield item

    router = APIRouter()

    @router.post("/chat/events", response_class=EventStream)
    async def slow(body: MessageRequest, relay: RelayContext, openai: OpenAIClient) -> Any:
        return relay.stream(
            openai.chat.completions.create(
                model=model_name("openai"),
                messages=[{"role": "user", "content": body.message}],
                stream=True,
            ),
            slow_events,
            NamedEvents(),
            provider="openai",
        )

    return create_relay_app(title="slow relay", routers=[router], providers=("openai",))


async def _measure(first_token_delay_ms: Callable[..., Any], url: str, mock: Any) -> float:
    result = first_token_delay_ms(url + "/chat/events", {"message": "Say hello."}, mock, runs=3)
    if inspect.isawaitable(result):
        result = await result
    if not isinstance(result, int | float):
        raise NotYet(f"return the delay in milliseconds, a number, not {result!r}")
    return float(result)


async def check_relay_delay(first_token_delay_ms: Callable[..., Any]) -> None:
    # Tokens 10 ms apart after the first: a client that leaves at the first token is gone before
    # the next one comes, so nothing is written to a closed connection.
    with (
        private_mock(ttft_ms=PROVIDER_WAIT_MS, token_interval_ms=10) as mock,
        BackgroundServer(create_chat_app()) as fast,
        BackgroundServer(_slow_app()) as slow,
    ):
        fast_ms = await _measure(first_token_delay_ms, fast.url, mock)
        if fast_ms < 0:
            raise NotYet(
                f"a negative delay ({fast_ms:.1f} ms): the event you timed arrived before the "
                "mock sent the first token; time the first *token* event"
            )
        if fast_ms > 80:
            hint = (
                f" (the mock waits {PROVIDER_WAIT_MS} ms before its first token: is that in it?)"
                if fast_ms > PROVIDER_WAIT_MS * 0.8
                else ""
            )
            raise NotYet(
                f"the lesson's relay holds the first token for {fast_ms:.0f} ms by your "
                f"measure; it passes it on within a few milliseconds{hint}"
            )
        slow_ms = await _measure(first_token_delay_ms, slow.url, mock)
    added = slow_ms - fast_ms
    if not 0.6 * HOLD_S * 1000 <= added <= 3 * HOLD_S * 1000:
        raise NotYet(
            f"the slow relay holds the first token {HOLD_S * 1000:.0f} ms longer; your "
            f"measurements differ by {added:.1f} (is it in milliseconds?)"
        )
