"""The core's provider adapters (lessons/relay_core/adapters.py), fed real SDK streams from the
mock: text, tool calls, thinking, usage, length limits, streams cut without their end marker.

Cases the mock does not stream (parallel tool calls, repeated cumulative usage, event types an
adapter does not know) are hand-written wire events, parsed into SDK objects the way each SDK
parses the events of its own stream (`construct_type`, as its stream reader does).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest
from anthropic import AsyncAnthropic
from anthropic._models import construct_type as anthropic_construct
from anthropic.types import RawMessageStreamEvent
from openai import APIError, AsyncOpenAI
from openai._models import construct_type as openai_construct
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import ResponseStreamEvent

from lessons.mock_providers import Fault
from lessons.relay_core import (
    Finish,
    Reasoning,
    StreamItem,
    Token,
    ToolCallDelta,
    Usage,
    anthropic_events,
    openai_chat_events,
    openai_responses_events,
)

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER_PROMPT = "What is the weather in Paris?"
HELLO = "Hello! How can I help you today?"
OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5-20251001"


def run(items: Awaitable[list[StreamItem]]) -> list[StreamItem]:
    return asyncio.run(items)  # type: ignore[arg-type]


def text(items: list[StreamItem]) -> str:
    return "".join(i.text for i in items if isinstance(i, Token))


def tool_calls(items: list[StreamItem]) -> dict[int, dict[str, Any]]:
    """The calls a client assembles from the pieces: id and name from the first, then arguments."""
    calls: dict[int, dict[str, Any]] = {}
    for item in items:
        if isinstance(item, ToolCallDelta):
            call = calls.setdefault(item.index, {"id": None, "name": None, "arguments": ""})
            call["id"] = call["id"] or item.id
            call["name"] = call["name"] or item.name
            call["arguments"] += item.arguments
    return calls


def assert_ends_once(items: list[StreamItem], reason: str) -> Usage:
    """Exactly one Usage and one Finish, the last two items (in the provider's order)."""
    usages = [i for i in items if isinstance(i, Usage)]
    finishes = [i for i in items if isinstance(i, Finish)]
    assert len(usages) == 1 and finishes == [Finish(reason)], items[-3:]
    assert set(map(type, items[-2:])) == {Usage, Finish}
    return usages[0]


async def chat(**kwargs: Any) -> list[StreamItem]:
    async with AsyncOpenAI(max_retries=0) as client:
        stream = await client.chat.completions.create(
            model=OPENAI_MODEL, stream=True, stream_options={"include_usage": True}, **kwargs
        )
        return [item async for item in openai_chat_events(stream)]


async def responses(**kwargs: Any) -> list[StreamItem]:
    async with AsyncOpenAI(max_retries=0) as client:
        stream = await client.responses.create(model=OPENAI_MODEL, stream=True, **kwargs)
        return [item async for item in openai_responses_events(stream)]


async def claude(helper: bool = False, **kwargs: Any) -> list[StreamItem]:
    async with AsyncAnthropic(max_retries=0) as client:
        args = {"model": ANTHROPIC_MODEL, "max_tokens": 2048, **kwargs}
        if helper:
            # The messages.stream() helper adds derived events (text, thinking, input_json).
            async with client.messages.stream(**args) as stream:
                return [item async for item in anthropic_events(stream)]
        stream = await client.messages.create(stream=True, **args)
        return [item async for item in anthropic_events(stream)]


def hello() -> list[dict[str, str]]:
    return [{"role": "user", "content": "Say hello."}]


# --- text and usage ------------------------------------------------------------------------------


def test_chat_text_and_usage(mock: Any) -> None:
    items = run(chat(messages=hello()))
    assert text(items) == HELLO
    assert all(isinstance(i, Token) for i in items[:-2])
    # Chat Completions sends the finish reason, then (with include_usage) the usage chunk.
    assert items[-2:] == [Finish("stop"), Usage(mock.last_request().input_tokens, 9)]


def test_chat_without_include_usage_reports_no_usage(mock: Any) -> None:
    async def without() -> list[StreamItem]:
        async with AsyncOpenAI(max_retries=0) as client:
            stream = await client.chat.completions.create(
                model=OPENAI_MODEL, stream=True, messages=hello()
            )
            return [item async for item in openai_chat_events(stream)]

    items = run(without())
    assert not any(isinstance(i, Usage) for i in items) and items[-1] == Finish("stop")


def test_responses_text_and_usage(mock: Any) -> None:
    items = run(responses(input="Say hello."))
    assert text(items) == HELLO  # output_text.done repeats the text: it is not forwarded
    assert assert_ends_once(items, "stop") == Usage(mock.last_request().input_tokens, 9)


@pytest.mark.parametrize("helper", [False, True], ids=["create", "stream-helper"])
def test_anthropic_text_and_usage(mock: Any, helper: bool) -> None:
    items = run(claude(helper, messages=hello()))
    # The helper's derived `text` events are skipped: every piece appears once.
    assert text(items) == HELLO
    usage = assert_ends_once(items, "stop")
    assert usage == Usage(mock.last_request().input_tokens, 9)


# --- length limits: the reply was cut, and the adapters say so -----------------------------------


def test_every_adapter_reports_a_reply_cut_by_its_token_limit_as_length(mock: Any) -> None:
    prompt = "What is machine learning?"
    cut = [
        run(chat(messages=[{"role": "user", "content": prompt}], max_completion_tokens=5)),
        run(responses(input=prompt, max_output_tokens=16)),
        run(claude(messages=[{"role": "user", "content": prompt}], max_tokens=5)),
    ]
    for items, limit in zip(cut, (5, 16, 5), strict=True):
        usage = assert_ends_once(items, "length")
        assert usage.output_tokens == limit == sum(isinstance(i, Token) for i in items)


# --- tool calls ----------------------------------------------------------------------------------


def test_chat_tool_call_pieces(mock: Any) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    items = run(chat(messages=[{"role": "user", "content": WEATHER_PROMPT}], tools=tools))
    calls = tool_calls(items)
    assert list(calls) == [0]
    assert calls[0]["name"] == "get_weather" and calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert sum(isinstance(i, ToolCallDelta) for i in items) > 2  # the arguments came in pieces
    assert_ends_once(items, "tool_calls")


def test_responses_function_call(mock: Any) -> None:
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER}]
    items = run(responses(input=WEATHER_PROMPT, tools=tools))
    calls = tool_calls(items)
    assert list(calls) == [0]  # numbered among the calls, not by output_index
    assert calls[0]["name"] == "get_weather" and calls[0]["id"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert_ends_once(items, "tool_calls")


@pytest.mark.parametrize("helper", [False, True], ids=["create", "stream-helper"])
def test_anthropic_tool_use_after_a_text_block(mock: Any, helper: bool) -> None:
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER}]
    items = run(claude(helper, messages=[{"role": "user", "content": WEATHER_PROMPT}], tools=tools))
    assert text(items) == "I'll use the get_weather tool to answer that."
    calls = tool_calls(items)
    # The tool_use block is content block 1 (after the text): numbered 0 among the tool calls.
    assert list(calls) == [0]
    assert calls[0]["id"].startswith("toolu_") and calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert_ends_once(items, "tool_calls")


def chat_chunk(delta: dict[str, Any] | None, finish: str | None = None) -> Any:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return openai_construct(
        type_=ChatCompletionChunk,
        value={
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": OPENAI_MODEL,
            "choices": choices,
        },
    )


async def aiter_of(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def adapt(adapter: Any, events: list[Any]) -> list[StreamItem]:
    return [item async for item in adapter(aiter_of(events))]


def call_delta(index: int, arguments: str, id: str | None = None, name: str | None = None) -> Any:
    function: dict[str, Any] = {"arguments": arguments}
    call: dict[str, Any] = {"index": index, "function": function}
    if id is not None:
        call |= {"id": id, "type": "function"}
        function["name"] = name
    return {"tool_calls": [call]}


def test_chat_parallel_tool_calls_keep_their_own_index() -> None:
    chunks = [
        chat_chunk({"role": "assistant", **call_delta(0, "", "call_a", "get_weather")}),
        chat_chunk(call_delta(1, "", "call_b", "get_time")),
        chat_chunk(call_delta(0, '{"city": ')),
        chat_chunk(call_delta(1, '{"zone": "CET"}')),
        chat_chunk(call_delta(0, '"Paris"}')),
        chat_chunk({}, finish="tool_calls"),
    ]
    items = run(adapt(openai_chat_events, chunks))
    assert tool_calls(items) == {
        0: {"id": "call_a", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "call_b", "name": "get_time", "arguments": '{"zone": "CET"}'},
    }
    assert items[-1] == Finish("tool_calls")


def anthropic_event(value: dict[str, Any]) -> Any:
    return anthropic_construct(type_=RawMessageStreamEvent, value=value)


def message_start(input_tokens: int) -> dict[str, Any]:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_MODEL,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
    }
    return {"type": "message_start", "message": message}


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def block_delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def message_delta(stop_reason: str | None, output_tokens: int) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason},
        "usage": {"output_tokens": output_tokens},
    }


def test_anthropic_parallel_tool_use_blocks_are_numbered_among_the_calls() -> None:
    events = [
        message_start(30),
        block_start(0, {"type": "text", "text": ""}),
        block_delta(0, {"type": "text_delta", "text": "Checking both."}),
        {"type": "content_block_stop", "index": 0},
        block_start(1, {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}}),
        block_start(2, {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}}),
        block_delta(2, {"type": "input_json_delta", "partial_json": '{"zone": "CET"}'}),
        block_delta(1, {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'}),
        message_delta("tool_use", 40),
        {"type": "message_stop"},
    ]
    items = run(adapt(anthropic_events, [anthropic_event(e) for e in events]))
    assert tool_calls(items) == {
        0: {"id": "toolu_a", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "toolu_b", "name": "get_time", "arguments": '{"zone": "CET"}'},
    }
    assert items[-2:] == [Usage(30, 40), Finish("tool_calls")]


def responses_event(value: dict[str, Any]) -> Any:
    return openai_construct(type_=ResponseStreamEvent, value=value)


def test_responses_parallel_function_calls_are_numbered_in_order() -> None:
    def added(output_index: int, call_id: str, name: str) -> dict[str, Any]:
        item = {"type": "function_call", "call_id": call_id, "name": name, "arguments": ""}
        return {"type": "response.output_item.added", "output_index": output_index, "item": item}

    def arguments(output_index: int, delta: str) -> dict[str, Any]:
        kind = "response.function_call_arguments.delta"
        return {"type": kind, "output_index": output_index, "delta": delta, "item_id": "fc"}

    completed = {
        "type": "response.completed",
        "response": {"usage": {"input_tokens": 12, "output_tokens": 8}, "status": "completed"},
    }
    events = [
        added(1, "call_a", "get_weather"),  # output 0 might be a reasoning item
        added(2, "call_b", "get_time"),
        arguments(2, '{"zone": "CET"}'),
        arguments(1, '{"city": "Paris"}'),
        completed,
    ]
    items = run(adapt(openai_responses_events, [responses_event(e) for e in events]))
    assert tool_calls(items) == {
        0: {"id": "call_a", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "call_b", "name": "get_time", "arguments": '{"zone": "CET"}'},
    }
    assert items[-2:] == [Usage(12, 8), Finish("tool_calls")]


# --- thinking ------------------------------------------------------------------------------------


def test_anthropic_thinking_becomes_reasoning_items_before_the_text(mock: Any) -> None:
    items = run(claude(messages=hello(), thinking={"type": "enabled", "budget_tokens": 1024}))
    reasoning = [i for i in items if isinstance(i, Reasoning)]
    first_token = next(n for n, i in enumerate(items) if isinstance(i, Token))
    assert reasoning and all(isinstance(i, Reasoning) for i in items[:first_token])
    assert text(items) == HELLO  # the thinking is not the answer's text
    observed = mock.last_request()
    # The usage bills the thinking too: more output tokens than the 9 pieces of text.
    usage = assert_ends_once(items, "stop")
    assert usage.output_tokens == observed.tokens_planned > 9


def test_anthropic_usage_is_the_last_cumulative_total_not_a_sum() -> None:
    events = [
        message_start(12),
        {"type": "ping"},
        block_start(0, {"type": "text", "text": ""}),
        block_delta(0, {"type": "text_delta", "text": "Hi"}),
        message_delta(None, 3),
        message_delta("max_tokens", 5),
        {"type": "some_future_event", "detail": "a type this adapter has never seen"},
        {"type": "message_stop"},
    ]
    items = run(adapt(anthropic_events, [anthropic_event(e) for e in events]))
    # The ping and the unknown event are ignored; each message_delta restates the total so far.
    assert [i for i in items if not isinstance(i, Usage)] == [Token("Hi"), Finish("length")]
    assert [i for i in items if isinstance(i, Usage)][-1] == Usage(12, 5)


# --- streams that end without their end marker, and failures -------------------------------------


def test_a_stream_cut_without_its_end_marker_yields_no_finish(mock: Any) -> None:
    # The SDKs see a normal end of the stream; only the missing Finish tells the core that the
    # reply was cut short (it then ends the client's stream with stream_interrupted).
    mock.script(fault=Fault.end_early(after_tokens=3), times=None)
    for items in (
        run(chat(messages=hello())),
        run(responses(input="Say hello.")),
        run(claude(messages=hello())),
    ):
        assert text(items) == "Hello! How"
        assert not any(isinstance(i, Finish) for i in items), items


def test_a_responses_error_event_raises(mock: Any) -> None:
    mock.script(fault=Fault.error_event(after_tokens=2, kind="server_error"), times=1)
    with pytest.raises(APIError):
        run(responses(input="Say hello."))


def test_a_responses_failed_event_raises_provider_error() -> None:
    from lessons.relay_core import ErrorCode, StreamFailed

    failed = {"type": "response.failed", "response": {"status": "failed"}}
    with pytest.raises(StreamFailed) as caught:
        run(adapt(openai_responses_events, [responses_event(failed)]))
    assert caught.value.code is ErrorCode.PROVIDER_ERROR
