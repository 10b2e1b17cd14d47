"""The provider adapters, fed real SDK streams from the mock: text, tool calls, thinking, usage."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from lessons.relay_core import ErrorCode
from lessons.two_providers.adapters import (
    AdapterError,
    Finish,
    Token,
    ToolCallDelta,
    UnifiedEvent,
    Usage,
    anthropic_events,
    openai_chat_events,
    openai_responses_events,
)

WEATHER_TOOL_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
PROMPT = "What is the weather in Paris?"


def collect(adapter_output: AsyncIterator[UnifiedEvent]) -> list[UnifiedEvent]:
    async def run() -> list[UnifiedEvent]:
        return [event async for event in adapter_output]

    return asyncio.run(run())


def assert_order(events: list[UnifiedEvent]) -> None:
    """Tokens and tool-call pieces first, then exactly one Usage, then exactly one Finish."""
    assert isinstance(events[-1], Finish)
    assert isinstance(events[-2], Usage)
    assert all(isinstance(e, Token | ToolCallDelta) for e in events[:-2])


def tool_calls(events: list[UnifiedEvent]) -> dict[int, dict[str, Any]]:
    calls: dict[int, dict[str, Any]] = {}
    for e in events:
        if isinstance(e, ToolCallDelta):
            call = calls.setdefault(e.index, {"id": None, "name": None, "arguments": ""})
            call["id"] = call["id"] or e.id
            call["name"] = call["name"] or e.name
            call["arguments"] += e.arguments
    return calls


def text(events: list[UnifiedEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, Token))


async def _chat(**kwargs: Any) -> list[UnifiedEvent]:
    async with AsyncOpenAI() as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", stream=True, stream_options={"include_usage": True}, **kwargs
        )
        return [e async for e in openai_chat_events(stream)]


async def _responses(**kwargs: Any) -> list[UnifiedEvent]:
    async with AsyncOpenAI() as client:
        stream = await client.responses.create(model="gpt-4o-mini", stream=True, **kwargs)
        return [e async for e in openai_responses_events(stream)]


async def _anthropic(helper: bool = False, **kwargs: Any) -> list[UnifiedEvent]:
    async with AsyncAnthropic() as client:
        args = {"model": "claude-haiku-4-5-20251001", "max_tokens": 2048, **kwargs}
        if helper:
            # The messages.stream() helper adds derived events (text, thinking, input_json).
            async with client.messages.stream(**args) as stream:
                return [e async for e in anthropic_events(stream)]
        stream = await client.messages.create(stream=True, **args)
        return [e async for e in anthropic_events(stream)]


def test_chat_text_and_usage(mock: Any) -> None:
    events = asyncio.run(_chat(messages=[{"role": "user", "content": "Say hello."}]))
    assert_order(events)
    assert text(events) == "Hello! How can I help you today?"
    assert events[-2] == Usage(mock.last_request().input_tokens, 9)
    assert events[-1] == Finish("stop")


def test_chat_tool_call_deltas(mock: Any) -> None:
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_TOOL_SCHEMA}}
    ]
    events = asyncio.run(_chat(messages=[{"role": "user", "content": PROMPT}], tools=tools))
    assert_order(events)
    calls = tool_calls(events)
    assert list(calls) == [0]
    assert calls[0]["name"] == "get_weather" and calls[0]["id"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert sum(isinstance(e, ToolCallDelta) for e in events) > 2  # arguments came in pieces
    assert events[-1] == Finish("tool_calls")


def test_responses_text_and_tool_call(mock: Any) -> None:
    events = asyncio.run(_responses(input="Say hello."))
    assert_order(events)
    assert text(events) == "Hello! How can I help you today?"
    assert events[-1] == Finish("stop")

    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER_TOOL_SCHEMA}]
    events = asyncio.run(_responses(input=PROMPT, tools=tools))
    assert_order(events)
    calls = tool_calls(events)
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert events[-1] == Finish("tool_calls")


@pytest.mark.parametrize("helper", [False, True], ids=["create", "stream-helper"])
def test_anthropic_text_and_cumulative_usage(mock: Any, helper: bool) -> None:
    events = asyncio.run(_anthropic(helper, messages=[{"role": "user", "content": "Say hello."}]))
    assert_order(events)
    # The helper's derived `text` events are skipped: every piece appears once.
    assert text(events) == "Hello! How can I help you today?"
    assert events[-2] == Usage(mock.last_request().input_tokens, 9)
    assert events[-1] == Finish("stop")


@pytest.mark.parametrize("helper", [False, True], ids=["create", "stream-helper"])
def test_anthropic_tool_use_blocks(mock: Any, helper: bool) -> None:
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER_TOOL_SCHEMA}]
    events = asyncio.run(
        _anthropic(helper, messages=[{"role": "user", "content": PROMPT}], tools=tools)
    )
    assert_order(events)
    assert text(events) == "I'll use the get_weather tool to answer that."
    calls = tool_calls(events)
    assert list(calls) == [0]  # numbered among tool calls, not by content block index
    assert calls[0]["id"].startswith("toolu_") and calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert events[-1] == Finish("tool_calls")


def test_anthropic_thinking_is_passed_over(mock: Any) -> None:
    events = asyncio.run(
        _anthropic(
            messages=[{"role": "user", "content": "Say hello."}],
            thinking={"type": "enabled", "budget_tokens": 1024},
        )
    )
    assert_order(events)
    # Only the answer is forwarded; the thinking block's text is not.
    assert text(events) == "Hello! How can I help you today?"
    observed = mock.last_request()
    # Usage still bills the thinking tokens: output_tokens counts more than the 9 text pieces.
    usage = events[-2]
    assert isinstance(usage, Usage) and usage.output_tokens == observed.tokens_planned > 9


# --- edge cases the mock's streams do not show, on hand-made events -----------------------------


async def _aiter(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def ns(**kwargs: Any) -> SimpleNamespace:
    return SimpleNamespace(**kwargs)


def test_anthropic_usage_is_overwritten_not_summed() -> None:
    usage_start = ns(input_tokens=12, output_tokens=1)
    events = [
        ns(type="message_start", message=ns(usage=usage_start)),
        ns(type="ping"),
        ns(type="content_block_start", index=0, content_block=ns(type="text")),
        ns(type="content_block_delta", index=0, delta=ns(type="text_delta", text="Hi")),
        ns(
            type="message_delta",
            delta=ns(stop_reason=None),
            usage=ns(output_tokens=3, input_tokens=None),
        ),
        ns(
            type="message_delta",
            delta=ns(stop_reason="max_tokens"),
            usage=ns(output_tokens=5, input_tokens=None),
        ),
        ns(type="some_future_event"),
        ns(type="message_stop"),
    ]
    assert collect(anthropic_events(_aiter(events))) == [
        Token("Hi"),
        Usage(12, 5),
        Finish("length"),
    ]


def test_missing_terminator_raises_stream_interrupted() -> None:
    start = ns(type="message_start", message=ns(usage=ns(input_tokens=1, output_tokens=1)))
    for adapter, items in [
        (anthropic_events, [start]),
        (openai_chat_events, []),
        (openai_responses_events, [ns(type="response.created")]),
    ]:
        with pytest.raises(AdapterError) as caught:
            collect(adapter(_aiter(items)))
        assert caught.value.code is ErrorCode.STREAM_INTERRUPTED


def test_responses_failed_event_raises_provider_error() -> None:
    with pytest.raises(AdapterError) as caught:
        collect(openai_responses_events(_aiter([ns(type="response.failed")])))
    assert caught.value.code is ErrorCode.PROVIDER_ERROR
