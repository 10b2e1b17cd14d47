"""Notebook 08's pieces without a server: the UI message stream shape, the request model and its
conversion, tool-call assembly, tool input checks, the tools, and the message assembler."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import ValidationError

from lessons.chat_ui.assemble import assemble, chunks_of
from lessons.chat_ui.protocol import (
    DataPart,
    StepEnd,
    StepStart,
    ToolInputAvailable,
    ToolInputError,
    ToolOutput,
    ToolOutputError,
    UIMessageStream,
    UIReplay,
    chunk,
)
from lessons.chat_ui.requests import (
    ChatTurnRequest,
    to_anthropic_messages,
    to_openai_responses_input,
)
from lessons.chat_ui.tools import CITIES, ConvertUnits, LookupCity, Toolbox, ToolFailed
from lessons.chat_ui.tools import convert_units as convert_tool
from lessons.chat_ui.tools import lookup_city as lookup_tool
from lessons.chat_ui.turn import ToolCall, ToolCallAssembler, check_input
from lessons.relay_core import ErrorCode, RelayError, StreamSummary, Usage
from lessons.relay_core.events import Frame, Reasoning, ToolCallDelta


def summary(**fields: Any) -> StreamSummary:
    return StreamSummary("req_" + "0" * 32, "openai", "gpt-4o-mini", 0.0, **fields)


def frames(data: bytes) -> list[Any]:
    """The chunks of some wire bytes, `[DONE]` kept as the string."""
    out: list[Any] = []
    for event in data.decode().split("\n\n"):
        if event:
            assert event.startswith("data: "), event
            body = event[len("data: ") :]
            out.append(body if body == "[DONE]" else json.loads(body))
    return out


def types(data: bytes) -> list[str]:
    return [c if isinstance(c, str) else c["type"] for c in frames(data)]


def test_text_then_reasoning_then_tools_open_and_close_their_parts() -> None:
    shape = UIMessageStream("msg-1")
    s = summary()
    wire = shape.start(s)
    wire += shape.other(Reasoning("Thinking"), s) or b""
    wire += shape.token("Hello")
    wire += shape.token(" there")
    wire += shape.other(ToolCallDelta(0, "call_a", "lookup_city", ""), s) or b""
    wire += shape.other(ToolCallDelta(0, None, None, '{"city":'), s) or b""
    wire += shape.other(ToolCallDelta(0, None, None, ' "Paris"}'), s) or b""
    wire += shape.other(ToolInputAvailable("call_a", "lookup_city", {"city": "Paris"}), s) or b""
    wire += shape.other(ToolOutput("call_a", {"country": "France"}), s) or b""
    wire += shape.other(StepEnd(), s) or b""
    wire += shape.other(StepStart(), s) or b""
    wire += shape.token("Done")
    wire += shape.done(summary(finish_reason="stop", usage=Usage(10, 5)))
    assert types(wire) == [
        "start",
        "start-step",
        "reasoning-start",
        "reasoning-delta",
        "reasoning-end",
        "text-start",
        "text-delta",
        "text-delta",
        "text-end",
        "tool-input-start",
        "tool-input-delta",
        "tool-input-delta",
        "tool-input-available",
        "tool-output-available",
        "finish-step",
        "start-step",
        "text-start",
        "text-delta",
        "text-end",
        "finish-step",
        "finish",
        "[DONE]",
    ]
    chunks = frames(wire)
    assert chunks[0] == {
        "type": "start",
        "messageId": "msg-1",
        "messageMetadata": {"provider": "openai", "model": "gpt-4o-mini"},
    }
    text_ids = {c["id"] for c in chunks if isinstance(c, dict) and c["type"].startswith("text-")}
    assert len(text_ids) == 2, "each text part has its own id"
    starts = [c for c in chunks if isinstance(c, dict) and c["type"] == "tool-input-start"]
    assert starts == [
        {"type": "tool-input-start", "toolCallId": "call_a", "toolName": "lookup_city"}
    ]
    assert chunks[-2] == {
        "type": "finish",
        "finishReason": "stop",
        "messageMetadata": {"usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15}},
    }


def test_parallel_calls_keep_their_ids_whatever_the_order_of_their_pieces() -> None:
    shape = UIMessageStream("m")
    s = summary()
    pieces = [
        ToolCallDelta(0, "call_a", "lookup_city", ""),
        ToolCallDelta(1, "call_b", "lookup_city", ""),
        ToolCallDelta(0, None, None, '{"city": "Paris"}'),
        ToolCallDelta(1, None, None, '{"city": "Tokyo"}'),
    ]
    wire = b"".join(shape.other(p, s) or b"" for p in pieces)
    deltas = [c for c in frames(wire) if c["type"] == "tool-input-delta"]
    assert [(d["toolCallId"], d["inputTextDelta"]) for d in deltas] == [
        ("call_a", '{"city": "Paris"}'),
        ("call_b", '{"city": "Tokyo"}'),
    ]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool-calls"),
        ("content_filter", "content-filter"),
        ("odd", "other"),
    ],
)
def test_finish_reasons_are_the_protocols(reason: str, expected: str) -> None:
    done = UIMessageStream("m").done(summary(finish_reason=reason))
    assert frames(done)[-2]["finishReason"] == expected


def test_an_error_closes_the_open_part_and_ends_with_the_contracts_fields() -> None:
    shape = UIMessageStream("m")
    s = summary()
    wire = shape.token("Hel")
    wire += shape.error(RelayError(ErrorCode.PROVIDER_OVERLOADED, "req_" + "1" * 32), s)
    chunks = frames(wire)
    assert [c if isinstance(c, str) else c["type"] for c in chunks][-3:] == [
        "text-end",
        "error",
        "[DONE]",
    ]
    assert chunks[-2] == {
        "type": "error",
        "errorText": "The model provider is overloaded. Try again shortly.",
        "code": "provider_overloaded",
        "request_id": "req_" + "1" * 32,
    }


def test_a_stopped_reply_ends_with_abort() -> None:
    wire = UIMessageStream("m").error(RelayError(ErrorCode.STOPPED, "req_x"), summary())
    chunks = frames(wire)
    assert chunks[0]["type"] == "abort" and chunks[0]["code"] == "stopped"
    assert chunks[0]["reason"] == "The reply was stopped before it was complete."
    assert chunks[-1] == "[DONE]"


def test_data_parts_tool_errors_and_the_replay_shape() -> None:
    shape = UIMessageStream("m")
    s = summary()
    progress = shape.other(DataPart("tool-progress", {"status": "x"}, id="p1"), s) or b""
    transient = shape.other(DataPart("note", 1, transient=True), s) or b""
    assert frames(progress) == [{"type": "data-tool-progress", "data": {"status": "x"}, "id": "p1"}]
    assert frames(transient) == [{"type": "data-note", "data": 1, "transient": True}]
    failed = shape.other(ToolInputError("c", "t", "{bad", "not JSON"), s) or b""
    assert frames(failed)[0]["type"] == "tool-input-error"
    assert frames(failed)[0]["input"] == "{bad"
    assert frames(shape.other(ToolOutputError("c", "boom"), s) or b"")[0] == {
        "type": "tool-output-error",
        "toolCallId": "c",
        "errorText": "boom",
    }
    replay = UIReplay()
    assert replay.start(s) is None, "no retry: line, the protocol has none"
    assert replay.other(Frame("7", b'data: {"type":"x"}\n\n'), s) == b'data: {"type":"x"}\n\n'
    assert UIReplay.headers == {"x-vercel-ai-ui-message-stream": "v1"}
    assert frames(replay.error(RelayError(ErrorCode.STREAM_INTERRUPTED, "r"), s))[0]["type"] == (
        "error"
    )


# --- the request ---------------------------------------------------------------------------------


def user(text: str, message_id: str = "u1") -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


def body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "chat-1", "messages": list(messages), "trigger": "submit-message", **extra}


HISTORY = [
    user("Look up Paris"),
    {
        "id": "a1",
        "role": "assistant",
        "metadata": {"usage": {"inputTokens": 1}},
        "parts": [
            {"type": "step-start"},
            {"type": "reasoning", "text": "hm", "state": "done", "id": "reasoning-1"},
            {
                "type": "tool-lookup_city",
                "toolCallId": "call_1",
                "state": "output-available",
                "input": {"city": "Paris"},
                "output": {"country": "France"},
            },
            {
                "type": "tool-lookup_city",
                "toolCallId": "call_2",
                "state": "output-error",
                "input": {"city": "Atlantis"},
                "errorText": "No city named 'Atlantis' in the table.",
            },
            {"type": "tool-lookup_city", "toolCallId": "call_3", "state": "input-streaming"},
            {"type": "data-tool-progress", "id": "p", "data": {"status": "found"}},
            {"type": "step-start"},
            {"type": "text", "text": "Paris is in France.", "state": "done"},
        ],
    },
    user("And Tokyo?", "u2"),
]


def test_a_use_chat_body_validates_and_converts_for_both_providers() -> None:
    request = ChatTurnRequest.model_validate(body(*HISTORY, provider="anthropic"))
    assert request.provider == "anthropic" and request.tools is None
    items = to_openai_responses_input(request.messages)
    assert items == [
        {"role": "user", "content": "Look up Paris"},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "lookup_city",
            "arguments": '{"city": "Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": '{"country": "France"}'},
        {
            "type": "function_call",
            "call_id": "call_2",
            "name": "lookup_city",
            "arguments": '{"city": "Atlantis"}',
        },
        {
            "type": "function_call_output",
            "call_id": "call_2",
            "output": json.dumps({"error": "No city named 'Atlantis' in the table."}),
        },
        {"role": "assistant", "content": "Paris is in France."},
        {"role": "user", "content": "And Tokyo?"},
    ]
    messages = to_anthropic_messages(request.messages)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert [b["type"] for b in messages[1]["content"]] == ["tool_use", "tool_use"]
    results = messages[2]["content"]
    assert [b.get("is_error", False) for b in results] == [False, True]
    # The tool results and the next user turn would be two user turns: they are merged.
    assert [b["type"] for b in messages[4]["content"]] == ["text"]


@pytest.mark.parametrize(
    ("case", "bad"),
    [
        (
            "unknown part",
            body({"id": "u", "role": "user", "parts": [{"type": "file", "url": "x"}]}),
        ),
        ("unknown field", body(user("hi"), message="hi")),
        ("no messages", body()),
        (
            "last is the assistant's",
            body(user("hi"), {"id": "a", "role": "assistant", "parts": []}),
        ),
        ("blank user text", body(user("   "))),
        ("too many messages", body(*[user("hi", f"u{i}") for i in range(101)])),
        ("oversized text", body(user("x" * 40_000))),
        ("conversation too long", body(*[user("x" * 30_000, f"u{i}") for i in range(3)])),
        ("bad id", body(user("hi")) | {"id": "../etc"}),
        ("bad trigger", body(user("hi")) | {"trigger": "resume-stream"}),
        (
            "bad tool state",
            body(user("hi") | {"parts": [{"type": "tool-x", "toolCallId": "c", "state": "?"}]}),
        ),
        ("unknown provider", body(user("hi"), provider="gemini")),
    ],
)
def test_bad_bodies_are_refused(case: str, bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ChatTurnRequest.model_validate(bad)


# --- tool calls and tools ------------------------------------------------------------------------


def test_the_assembler_keys_pieces_by_index_not_arrival() -> None:
    assembler = ToolCallAssembler()
    for delta in [
        ToolCallDelta(0, "a", "lookup_city", ""),
        ToolCallDelta(1, "b", "lookup_city", ""),
        ToolCallDelta(0, None, None, '{"city"'),
        ToolCallDelta(1, None, None, '{"city"'),
        ToolCallDelta(0, None, None, ': "Paris"}'),
        ToolCallDelta(1, None, None, ': "Tokyo"}'),
    ]:
        assembler.add(delta)
    calls = assembler.finished()
    assert [(c.id, json.loads(c.arguments)) for c in calls] == [
        ("a", {"city": "Paris"}),
        ("b", {"city": "Tokyo"}),
    ]


def test_tool_inputs_are_checked_with_the_tools_model() -> None:
    box = Toolbox()
    tool = box.get("convert_units")
    good = ToolCall(
        0, "c", "convert_units", ['{"value": 10, "from_unit": "km", "to_unit": "miles"}']
    )
    assert check_input(good, tool) == ({"value": 10, "from_unit": "km", "to_unit": "miles"}, None)
    broken = ToolCall(0, "c", "convert_units", ['{"value": 1'])
    assert check_input(broken, tool) == ('{"value": 1', "The tool input is not valid JSON.")
    huge = ToolCall(0, "c", "convert_units", ['{"value": 1e12, "from_unit": "km", "to_unit": "m"}'])
    raw, problem = check_input(huge, tool)
    assert raw["value"] == 1e12 and problem is not None and problem.startswith("Invalid input")
    assert (
        check_input(ToolCall(0, "c", "nope", ["{}"]), None)[1] == "There is no tool named 'nope'."
    )


def test_the_tools_are_deterministic_and_fail_clearly() -> None:
    reports: list[dict[str, Any]] = []
    run = asyncio.run
    converted = run(
        convert_tool(ConvertUnits(value=10, from_unit="km", to_unit="miles"), reports.append)
    )
    assert converted["result"] == pytest.approx(6.2137, abs=1e-4)
    freezing = run(
        convert_tool(
            ConvertUnits(value=32, from_unit="fahrenheit", to_unit="celsius"), reports.append
        )
    )
    assert freezing["result"] == 0
    with pytest.raises(ToolFailed, match="Cannot convert length"):
        run(convert_tool(ConvertUnits(value=1, from_unit="km", to_unit="kg"), reports.append))
    assert run(lookup_tool(LookupCity(city="paris"), reports.append)) == CITIES["paris"]
    with pytest.raises(ToolFailed, match="No city named 'Atlantis'"):
        run(lookup_tool(LookupCity(city="Atlantis"), reports.append))
    assert [r["status"] for r in reports] == ["searching", "found", "searching"]
    schemas = {t["name"]: t["parameters"] for t in Toolbox().openai_responses()}
    assert schemas["lookup_city"]["required"] == ["city"]
    assert [t["name"] for t in Toolbox().only(["lookup_city"]).anthropic()] == ["lookup_city"]
    assert Toolbox().only([]).tools == ()


def test_the_assembler_builds_the_message_use_chat_builds() -> None:
    sent = [
        {"type": "start", "messageId": "m1", "messageMetadata": {"model": "x"}},
        {"type": "start-step"},
        {"type": "tool-input-start", "toolCallId": "c", "toolName": "lookup_city"},
        {"type": "tool-input-delta", "toolCallId": "c", "inputTextDelta": '{"city": "Paris"}'},
        {
            "type": "tool-input-available",
            "toolCallId": "c",
            "toolName": "lookup_city",
            "input": {"city": "Paris"},
        },
        {"type": "data-tool-progress", "id": "p", "data": {"status": "searching"}},
        {"type": "data-tool-progress", "id": "p", "data": {"status": "found"}},
        {"type": "tool-output-available", "toolCallId": "c", "output": {"country": "France"}},
        {"type": "finish-step"},
        {"type": "start-step"},
        {"type": "text-start", "id": "t"},
        {"type": "text-delta", "id": "t", "delta": "In France."},
        {"type": "text-end", "id": "t"},
        {
            "type": "finish",
            "finishReason": "stop",
            "messageMetadata": {"usage": {"totalTokens": 3}},
        },
    ]
    wire = b"".join(chunk(c) for c in sent) + b"data: [DONE]\n\n"
    built = assemble(chunks_of([wire]))
    assert built.finish_reason == "stop" and built.error is None
    assert built.message == {
        "id": "m1",
        "role": "assistant",
        "parts": [
            {"type": "step-start"},
            {
                "type": "tool-lookup_city",
                "toolCallId": "c",
                "state": "output-available",
                "input": {"city": "Paris"},
                "output": {"country": "France"},
            },
            {"type": "data-tool-progress", "data": {"status": "found"}, "id": "p"},
            {"type": "step-start"},
            {"type": "text", "text": "In France.", "state": "done"},
        ],
        "metadata": {"model": "x", "usage": {"totalTokens": 3}},
    }
    # What the server keeps is what the next request may send back.
    ChatTurnRequest.model_validate(body(user("q"), built.message, user("again", "u2")))
