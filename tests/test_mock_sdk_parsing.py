"""The official clients parse the mock's streams into the same objects as real ones."""

import asyncio
import json
from typing import Any

import pytest
from langchain_openai import ChatOpenAI

from lessons.mock_providers import CANNED_REPLIES
from lessons.mock_providers.tokens import split_pieces
from tests.conftest_mock import (
    ANTHROPIC_MODEL,
    HELLO_PROMPT,
    ML_PROMPT,
    OPENAI_MODEL,
    ServedMock,
    _mock_server,
    served,
    user,
)

# Fixtures, imported so that pytest finds them.
__all__ = ["_mock_server", "served"]

ML_ANSWER = CANNED_REPLIES["what is machine learning?"]
ML_PIECES = split_pieces(ML_ANSWER)
HELLO_PIECES = split_pieces(CANNED_REPLIES["say hello."])

WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": WEATHER_TOOL_OPENAI["function"]["parameters"],
}
WEATHER_PROMPT = "What is the weather in Paris today?"
WEATHER_ARGUMENTS = {"city": "Paris", "unit": "celsius"}


# --- OpenAI Chat Completions ------------------------------------------------------------------


@pytest.mark.parametrize("include_usage", [False, True])
def test_chat_stream_sync(served: ServedMock, include_usage: bool) -> None:
    options: dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
    with served.openai_client() as client:
        stream = client.chat.completions.create(
            model=OPENAI_MODEL, messages=user(ML_PROMPT), stream=True, **options
        )
        chunks = list(stream)
        request_id = stream.response.headers["x-request-id"]

    first, *middle = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    if include_usage:
        *middle, finish, usage_chunk = middle
        assert usage_chunk.choices == []
        assert usage_chunk.usage is not None
        assert usage_chunk.usage.completion_tokens == len(ML_PIECES)
        assert usage_chunk.usage.total_tokens == (
            usage_chunk.usage.prompt_tokens + usage_chunk.usage.completion_tokens
        )
        assert all(chunk.usage is None for chunk in chunks[:-1])
    else:
        *middle, finish = middle
        assert all(chunk.usage is None for chunk in chunks)
    assert [chunk.choices[0].delta.content for chunk in middle] == ML_PIECES
    assert finish.choices[0].finish_reason == "stop"
    assert finish.choices[0].delta.content is None
    assert len({(chunk.id, chunk.created, chunk.model) for chunk in chunks}) == 1
    assert chunks[0].id.startswith("chatcmpl-")
    assert chunks[0].model == OPENAI_MODEL
    assert request_id == served.mock.last_request().request_id


@pytest.mark.parametrize("include_usage", [False, True])
def test_chat_stream_async(served: ServedMock, include_usage: bool) -> None:
    async def run() -> tuple[str, Any]:
        async with served.async_openai_client() as client:
            stream = await client.chat.completions.create(
                model=OPENAI_MODEL,
                messages=user(ML_PROMPT),
                stream=True,
                stream_options={"include_usage": include_usage},
            )
            text, usage = "", None
            async for chunk in stream:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                usage = chunk.usage or usage
            return text, usage

    text, usage = asyncio.run(run())
    assert text == ML_ANSWER
    if include_usage:
        assert usage.completion_tokens == len(ML_PIECES)
    else:
        assert usage is None


def test_chat_not_streaming(served: ServedMock) -> None:
    with served.openai_client() as client:
        completion = client.chat.completions.create(model=OPENAI_MODEL, messages=user(ML_PROMPT))
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == ML_ANSWER
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(ML_PIECES)
    assert served.mock.last_request().stream is False


@pytest.mark.parametrize("limit", ["max_tokens", "max_completion_tokens"])
def test_chat_max_tokens_cuts_the_reply(served: ServedMock, limit: str) -> None:
    with served.openai_client() as client:
        chunks = list(
            client.chat.completions.create(
                model=OPENAI_MODEL,
                messages=user(ML_PROMPT),
                stream=True,
                stream_options={"include_usage": True},
                **{limit: 5},
            )
        )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(ML_PIECES[:5])
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


def test_chat_tool_call_stream(served: ServedMock) -> None:
    with (
        served.openai_client() as client,
        client.chat.completions.stream(
            model=OPENAI_MODEL, messages=user(WEATHER_PROMPT), tools=[WEATHER_TOOL_OPENAI]
        ) as stream,
    ):
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGUMENTS


def test_chat_tool_call_wire_shape(served: ServedMock) -> None:
    with served.openai_client() as client:
        chunks = list(
            client.chat.completions.create(
                model=OPENAI_MODEL,
                messages=user(WEATHER_PROMPT),
                tools=[WEATHER_TOOL_OPENAI],
                stream=True,
            )
        )
    first_call = chunks[0].choices[0].delta.tool_calls[0]
    assert (first_call.index, first_call.type, first_call.function.name) == (
        0,
        "function",
        "get_weather",
    )
    assert first_call.function.arguments == ""
    fragments = [c.choices[0].delta.tool_calls[0] for c in chunks[1:-1]]
    assert all(f.index == 0 and f.id is None for f in fragments)
    assert len(fragments) > 3, "arguments arrive in several fragments"
    assert json.loads("".join(f.function.arguments for f in fragments)) == WEATHER_ARGUMENTS
    assert served.mock.last_request().tokens_sent == len(fragments)


def test_chat_answers_a_tool_result_in_prose(served: ServedMock) -> None:
    messages = [
        *user(WEATHER_PROMPT),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C and sunny"},
    ]
    with served.openai_client() as client:
        completion = client.chat.completions.create(
            model=OPENAI_MODEL, messages=messages, tools=[WEATHER_TOOL_OPENAI]
        )
    assert completion.choices[0].finish_reason == "stop"
    assert "18 C and sunny" in (completion.choices[0].message.content or "")


# --- OpenAI Responses -------------------------------------------------------------------------

RESPONSES_TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * len(HELLO_PIECES),
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def test_responses_create_stream(served: ServedMock) -> None:
    with served.openai_client() as client:
        events = list(client.responses.create(model=OPENAI_MODEL, input=HELLO_PROMPT, stream=True))
    assert [event.type for event in events] == RESPONSES_TEXT_EVENTS
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert deltas == HELLO_PIECES
    created, completed = events[0].response, events[-1].response
    assert created.usage is None and created.status == "in_progress"
    assert completed.id == created.id and completed.id.startswith("resp_")
    assert completed.output_text == CANNED_REPLIES["say hello."]
    assert completed.usage is not None
    assert completed.usage.output_tokens == len(HELLO_PIECES)
    assert completed.usage.total_tokens == (
        completed.usage.input_tokens + completed.usage.output_tokens
    )


def test_responses_stream_helper(served: ServedMock) -> None:
    with (
        served.openai_client() as client,
        client.responses.stream(
            model=OPENAI_MODEL, input=user(ML_PROMPT), instructions="Be brief."
        ) as stream,
    ):
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text == ML_ANSWER
    assert final.usage is not None
    assert final.usage.output_tokens == len(ML_PIECES)
    observed = served.mock.last_request()
    assert (observed.endpoint, observed.messages, observed.system) == (
        "responses",
        user(ML_PROMPT),
        "Be brief.",
    )


def test_responses_function_call(served: ServedMock) -> None:
    tool = {"type": "function", **WEATHER_TOOL_OPENAI["function"]}
    with (
        served.openai_client() as client,
        client.responses.stream(model=OPENAI_MODEL, input=WEATHER_PROMPT, tools=[tool]) as stream,
    ):
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in types
    assert "response.function_call_arguments.done" in types
    (call,) = final.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert call.call_id.startswith("call_")
    assert json.loads(call.arguments) == WEATHER_ARGUMENTS


def test_responses_max_output_tokens_is_incomplete(served: ServedMock) -> None:
    with served.openai_client() as client:
        events = list(
            client.responses.create(
                model=OPENAI_MODEL, input=ML_PROMPT, max_output_tokens=16, stream=True
            )
        )
    final = events[-1]
    assert final.type == "response.incomplete"
    assert final.response.incomplete_details.reason == "max_output_tokens"
    assert final.response.output_text == "".join(ML_PIECES[:16])


def test_responses_not_streaming(served: ServedMock) -> None:
    with served.openai_client() as client:
        response = client.responses.create(model=OPENAI_MODEL, input=ML_PROMPT)
    assert response.status == "completed"
    assert response.output_text == ML_ANSWER


# --- Anthropic Messages -----------------------------------------------------------------------


def test_anthropic_create_stream_event_types(served: ServedMock) -> None:
    with served.anthropic_client() as client:
        stream = client.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=100, messages=user(HELLO_PROMPT), stream=True
        )
        events = list(stream)
        request_id = stream.response.headers["request-id"]
    assert [event.type for event in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * len(HELLO_PIECES),
        "content_block_stop",
        "message_delta",
        "message_stop",
    ], "ping is sent on the wire and skipped by the SDK"
    assert [e.delta.text for e in events if e.type == "content_block_delta"] == HELLO_PIECES
    assert events[0].message.usage.input_tokens > 0
    assert events[-2].delta.stop_reason == "end_turn"
    assert events[-2].usage.output_tokens == len(HELLO_PIECES)
    assert request_id == served.mock.last_request().request_id


def test_anthropic_stream_helper(served: ServedMock) -> None:
    with (
        served.anthropic_client() as client,
        client.messages.stream(
            model=ANTHROPIC_MODEL,
            max_tokens=500,
            system="You are a helpful assistant.",
            messages=user(ML_PROMPT),
        ) as stream,
    ):
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces == ML_PIECES
    assert final.content[0].text == ML_ANSWER
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(ML_PIECES)
    assert final.usage.input_tokens == served.mock.last_request().input_tokens
    observed = served.mock.last_request()
    assert observed.system == "You are a helpful assistant."
    assert observed.messages == user(ML_PROMPT)


def test_anthropic_async_stream_helper(served: ServedMock) -> None:
    async def run() -> tuple[list[str], int]:
        async with (
            served.async_anthropic_client() as client,
            client.messages.stream(
                model=ANTHROPIC_MODEL, max_tokens=500, messages=user(ML_PROMPT)
            ) as stream,
        ):
            pieces = [piece async for piece in stream.text_stream]
            final = await stream.get_final_message()
            return pieces, final.usage.output_tokens

    pieces, output_tokens = asyncio.run(run())
    assert pieces == ML_PIECES
    assert output_tokens == len(ML_PIECES)


def test_anthropic_max_tokens(served: ServedMock) -> None:
    with (
        served.anthropic_client() as client,
        client.messages.stream(
            model=ANTHROPIC_MODEL, max_tokens=4, messages=user(ML_PROMPT)
        ) as stream,
    ):
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert final.content[0].text == "".join(ML_PIECES[:4])
    assert final.usage.output_tokens == 4


def test_anthropic_not_streaming(served: ServedMock) -> None:
    with served.anthropic_client() as client:
        message = client.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=500, messages=user(ML_PROMPT)
        )
    assert message.content[0].text == ML_ANSWER
    assert message.usage.output_tokens == len(ML_PIECES)
    assert message.id.startswith("msg_01")


def test_anthropic_tool_use(served: ServedMock) -> None:
    with (
        served.anthropic_client() as client,
        client.messages.stream(
            model=ANTHROPIC_MODEL,
            max_tokens=500,
            messages=user(WEATHER_PROMPT),
            tools=[WEATHER_TOOL_ANTHROPIC],
        ) as stream,
    ):
        kinds = [event.delta.type for event in stream if event.type == "content_block_delta"]
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    text, tool_use = final.content
    assert text.type == "text" and "get_weather" in text.text
    assert tool_use.type == "tool_use"
    assert tool_use.id.startswith("toolu_01")
    assert (tool_use.name, tool_use.input) == ("get_weather", WEATHER_ARGUMENTS)
    assert "input_json_delta" in kinds
    assert final.usage.output_tokens == served.mock.last_request().tokens_sent


def test_anthropic_thinking_comes_before_text(served: ServedMock) -> None:
    with (
        served.anthropic_client() as client,
        client.messages.stream(
            model=ANTHROPIC_MODEL,
            max_tokens=2000,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=user(HELLO_PROMPT),
        ) as stream,
    ):
        deltas = [event.delta.type for event in stream if event.type == "content_block_delta"]
        final = stream.get_final_message()
    thinking, text = final.content
    assert thinking.type == "thinking" and thinking.thinking and thinking.signature
    assert text.type == "text" and text.text == CANNED_REPLIES["say hello."]
    assert deltas.index("signature_delta") < deltas.index("text_delta")
    assert deltas.count("signature_delta") == 1


def test_anthropic_answers_a_tool_result_in_prose(served: ServedMock) -> None:
    messages = [
        *user(WEATHER_PROMPT),
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C and sunny"}
            ],
        },
    ]
    with served.anthropic_client() as client:
        message = client.messages.create(
            model=ANTHROPIC_MODEL,
            max_tokens=500,
            messages=messages,
            tools=[WEATHER_TOOL_ANTHROPIC],
        )
    assert message.stop_reason == "end_turn"
    assert "18 C and sunny" in message.content[0].text


def test_anthropic_accepts_x_api_key(served: ServedMock) -> None:

    response = served.http.post(
        "/v1/messages?beta=true",
        headers={"x-api-key": "test-key", "anthropic-version": "2023-06-01"},
        json={"model": ANTHROPIC_MODEL, "max_tokens": 50, "messages": user(HELLO_PROMPT)},
    )
    assert response.status_code == 200
    assert response.json()["content"][0]["text"] == CANNED_REPLIES["say hello."]
    assert served.mock.last_request().headers["x-api-key"] != "test-key", "keys are masked"


# --- langchain-openai -------------------------------------------------------------------------


def test_langchain_astream_with_usage(served: ServedMock) -> None:
    async def run() -> Any:
        llm = ChatOpenAI(
            model=OPENAI_MODEL,
            base_url=f"{served.url}/v1",
            api_key="test-key",
            stream_usage=True,
            max_retries=0,
        )
        total = None
        contents = []
        async for chunk in llm.astream(ML_PROMPT):
            contents.append(chunk.content)
            total = chunk if total is None else total + chunk
        return contents, total

    contents, total = asyncio.run(run())
    assert "".join(contents) == ML_ANSWER
    assert [c for c in contents if c] == ML_PIECES
    assert total.usage_metadata["output_tokens"] == len(ML_PIECES)
    assert total.response_metadata["finish_reason"] == "stop"
    assert served.mock.last_request().body["stream_options"] == {"include_usage": True}
