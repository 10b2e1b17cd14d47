"""What notebook 08 added to the mock providers: parallel tool calls (and, scripted, interleaved
ones), arguments read from the prompt, the tool a prompt names, several tool results answered,
and reasoning summaries on the Responses API; each read by the official SDKs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from lessons.mock_providers import MockProviders
from lessons.mock_providers.conversation import Conversation, ToolSpec
from lessons.mock_providers.replies import compose_reply
from lessons.toolkit.background import BackgroundServer

CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
UNITS = ["km", "miles", "kg"]
CONVERT = {
    "type": "object",
    "properties": {
        "value": {"type": "number"},
        "from_unit": {"enum": UNITS},
        "to_unit": {"enum": UNITS},
    },
    "required": ["value", "from_unit", "to_unit"],
}
TWO_CITIES = "What time is it in Paris and in Tokyo?"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[MockProviders, str]]:
    mock = MockProviders()
    with BackgroundServer(mock.app) as server:
        yield mock, server.url


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def conversation(prompt: str, tools: tuple[ToolSpec, ...], **extra: Any) -> Conversation:
    return Conversation("openai", "m", True, [prompt], prompt, tools=tools, **extra)


def test_a_prompt_about_several_names_gets_parallel_calls() -> None:
    reply = compose_reply(conversation(TWO_CITIES, (ToolSpec("city_time", CITY),)), None, False)
    assert [json.loads(c.arguments) for c in reply.tool_calls] == [
        {"city": "Paris"},
        {"city": "Tokyo"},
    ]
    assert reply.output_tokens == sum(len(c.fragments) for c in reply.tool_calls)
    single = compose_reply(
        conversation(TWO_CITIES, (ToolSpec("city_time", CITY),), parallel_tool_calls=False),
        None,
        False,
    )
    assert [json.loads(c.arguments) for c in single.tool_calls] == [{"city": "Tokyo"}]


def test_numbers_and_units_come_from_the_prompt_and_the_named_tool_is_called() -> None:
    tools = (ToolSpec("lookup_city", CITY), ToolSpec("convert_units", CONVERT))
    reply = compose_reply(conversation("Convert 10.5 km to miles.", tools), None, False)
    assert reply.tool_call is not None and reply.tool_call.name == "convert_units"
    assert json.loads(reply.tool_call.arguments) == {
        "value": 10.5,
        "from_unit": "km",
        "to_unit": "miles",
    }
    plain = compose_reply(conversation("Anything at all", tools), None, False)
    assert plain.tool_call is not None and plain.tool_call.name == "lookup_city", "else the first"


def test_several_tool_results_are_all_answered() -> None:
    done = conversation("q", (), tool_result="B", tool_results=("A", "B"))
    assert compose_reply(done, None, False).full_text == "The tools returned: A; B"
    one = conversation("q", (), tool_result="A", tool_results=("A",))
    assert compose_reply(one, None, False).full_text == "The tool returned: A"


def test_chat_completions_streams_parallel_calls_by_index(served) -> None:
    mock, url = served

    async def main() -> list[tuple[int, str | None, str]]:
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="k") as client:
            stream = await client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": TWO_CITIES}],
                tools=[{"type": "function", "function": {"name": "city_time", "parameters": CITY}}],
                stream=True,
            )
            return [
                (call.index, call.id, call.function.arguments or "")
                async for chunk in stream
                if chunk.choices and chunk.choices[0].delta.tool_calls
                for call in chunk.choices[0].delta.tool_calls
            ]

    pieces = run(main())
    assert [index for index, _, _ in pieces] == sorted(index for index, _, _ in pieces), (
        "sequential"
    )
    ids = [call_id for _, call_id, _ in pieces if call_id]
    assert len(set(ids)) == 2
    arguments = ["".join(a for i, _, a in pieces if i == n) for n in (0, 1)]
    assert [json.loads(a) for a in arguments] == [{"city": "Paris"}, {"city": "Tokyo"}]

    mock.script(prompt_contains="Lisbon", interleave_tool_calls=True)
    prompt = "Compare Lisbon and Oslo"

    async def interleaved() -> list[int]:
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="k") as client:
            stream = await client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": prompt}],
                tools=[{"type": "function", "function": {"name": "city_time", "parameters": CITY}}],
                stream=True,
            )
            return [
                call.index
                async for chunk in stream
                if chunk.choices and chunk.choices[0].delta.tool_calls
                for call in chunk.choices[0].delta.tool_calls
            ]

    assert run(interleaved())[:6] == [0, 1, 0, 1, 0, 1]


def test_responses_streams_a_reasoning_summary_and_parallel_calls(served) -> None:
    _, url = served

    async def main() -> tuple[list[str], Any]:
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="k") as client:
            stream = await client.responses.create(
                model="m",
                input=TWO_CITIES,
                tools=[{"type": "function", "name": "city_time", "parameters": CITY}],
                reasoning={"summary": "auto"},
                stream=True,
            )
            kinds, final = [], None
            async for event in stream:
                kinds.append(event.type)
                if event.type == "response.completed":
                    final = event.response
            return kinds, final

    kinds, final = run(main())
    assert kinds.index("response.reasoning_summary_text.delta") < kinds.index(
        "response.function_call_arguments.delta"
    )
    assert [item.type for item in final.output] == ["reasoning", "function_call", "function_call"]
    assert final.output[0].summary[0].text.startswith("The user asks:")
    assert final.usage.output_tokens_details.reasoning_tokens == kinds.count(
        "response.reasoning_summary_text.delta"
    )
    assert final.reasoning.summary == "auto"


def test_anthropic_streams_parallel_tool_use_blocks(served) -> None:
    _, url = served

    async def main() -> Any:
        async with (
            anthropic.AsyncAnthropic(base_url=url, api_key="k") as client,
            client.messages.stream(
                model="m",
                max_tokens=300,
                messages=[{"role": "user", "content": TWO_CITIES}],
                tools=[{"name": "city_time", "input_schema": CITY}],
            ) as stream,
        ):
            return await stream.get_final_message()

    message = run(main())
    uses = [block for block in message.content if block.type == "tool_use"]
    assert [block.input for block in uses] == [{"city": "Paris"}, {"city": "Tokyo"}]
    assert len({block.id for block in uses}) == 2 and message.stop_reason == "tool_use"
