"""The body `useChat` sends, validated and bounded, and converted into each provider's messages.

`useChat`'s default transport (`DefaultChatTransport`, `ai` 7.x) POSTs, for each turn:

    {"id": chat id, "messages": [UIMessage, ...], "trigger": "submit-message" |
     "regenerate-message", "messageId": id or absent, ...the transport's own `body` fields}

A `UIMessage` is `{id, role, metadata?, parts: [...]}`; the parts a chat sends back are the ones
it was streamed: `text`, `reasoning`, `step-start`, `tool-<name>` (with its `state`), `data-<name>`.
Everything is bounded (message count, part count, text length, the conversation's total), and a
part this server does not know is refused with 422, echoing nothing.

The history becomes provider messages: user text as user messages; an assistant message step by
step, its text and its finished tool calls (with their results) in each provider's own form.
Reasoning is not sent back (a provider only takes its own, signed or encrypted), nor are tool
calls that never finished (a reply stopped mid-tool), nor data parts (they are for the page).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    field_validator,
    model_validator,
)

from lessons.relay_core import MAX_MESSAGE_CHARS
from lessons.relay_core.models import MAX_CONVERSATION_CHARS

MAX_MESSAGES = 100
MAX_PARTS = 60
# Ids are the client's (useChat makes 16-character ones); they appear in URLs and logs.
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
Text = Annotated[str, Field(max_length=MAX_MESSAGE_CHARS)]
ToolName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
ToolState = Literal[
    "input-streaming", "input-available", "output-available", "output-error", "output-denied"
]


class _Part(BaseModel):
    # The fields useChat may send back on a part; anything else is refused.
    model_config = ConfigDict(extra="forbid")

    providerMetadata: dict[str, JsonValue] | None = None


class TextPart(_Part):
    type: Literal["text"]
    text: Text
    state: Literal["streaming", "done"] | None = None


class ReasoningPart(_Part):
    type: Literal["reasoning"]
    text: Text
    id: str | None = Field(default=None, max_length=64)
    state: Literal["streaming", "done"] | None = None


class StepStartPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["step-start"]


class ToolPart(BaseModel):
    """`tool-<name>`: a tool call and, once it ran, its output or error."""

    model_config = ConfigDict(extra="forbid")

    type: Annotated[str, Field(pattern=r"^tool-[A-Za-z0-9_\-]{1,64}$")]
    toolCallId: Id
    state: ToolState
    input: JsonValue = None
    output: JsonValue = None
    errorText: str | None = Field(default=None, max_length=2_000)
    rawInput: JsonValue = None
    inputEncoding: Literal["json", "text"] | None = None
    providerExecuted: bool | None = None
    preliminary: bool | None = None
    title: str | None = Field(default=None, max_length=200)
    toolMetadata: dict[str, JsonValue] | None = None
    callProviderMetadata: dict[str, JsonValue] | None = None
    resultProviderMetadata: dict[str, JsonValue] | None = None

    @property
    def tool_name(self) -> str:
        return self.type.removeprefix("tool-")


class DataPart(BaseModel):
    """`data-<name>`: the page's own data (tool progress, say); never sent to a provider."""

    model_config = ConfigDict(extra="forbid")

    type: Annotated[str, Field(pattern=r"^data-[A-Za-z0-9_\-]{1,64}$")]
    id: str | None = Field(default=None, max_length=64)
    data: JsonValue = None


Part = TextPart | ReasoningPart | StepStartPart | ToolPart | DataPart


def _part_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if not isinstance(kind, str):
        return "unknown"
    if kind.startswith("tool-"):
        return "tool"
    if kind.startswith("data-"):
        return "data"
    return kind


# Parts are told apart by their type; tool and data parts by its prefix.
AnyPart = Annotated[
    Annotated[TextPart, Tag("text")]
    | Annotated[ReasoningPart, Tag("reasoning")]
    | Annotated[StepStartPart, Tag("step-start")]
    | Annotated[ToolPart, Tag("tool")]
    | Annotated[DataPart, Tag("data")],
    Discriminator(_part_kind),
]


class UIMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id
    role: Literal["system", "user", "assistant"]
    metadata: dict[str, JsonValue] | None = None
    parts: list[AnyPart] = Field(max_length=MAX_PARTS)

    @field_validator("parts", mode="before")
    @classmethod
    def known_parts(cls, parts: Any) -> Any:
        # One clear error per unknown part type (a union would report every member's).
        if isinstance(parts, list):
            for index, part in enumerate(parts):
                if _part_kind(part) not in ("text", "reasoning", "step-start", "tool", "data"):
                    raise ValueError(f"part {index} has a type this server does not take")
        return parts

    def text(self) -> str:
        return "".join(part.text for part in self.parts if isinstance(part, TextPart))


class ChatTurnRequest(BaseModel):
    """`POST /api/chat`: the body of `useChat`'s default transport, plus this app's options."""

    model_config = ConfigDict(extra="forbid")

    id: Id
    messages: list[UIMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    trigger: Literal["submit-message", "regenerate-message"]
    messageId: Id | None = None
    # This app's own fields, sent through the transport's `body`:
    provider: Literal["openai", "anthropic"] = "openai"
    # Which of the server's tools this turn may use (None: all of them; []: none).
    tools: list[ToolName] | None = Field(default=None, max_length=10)
    # Ask the model for its visible reasoning (a reasoning model's summary, Claude's thinking).
    reasoning: bool = False
    # The most tokens each step's reply may have; the server caps it (see its settings).
    max_tokens: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def a_user_turn_bounded(self) -> ChatTurnRequest:
        last = self.messages[-1]
        if last.role != "user" or not last.text().strip():
            raise ValueError("the last message must be the user's, with some text")
        total = sum(len(m.text()) for m in self.messages)
        if total > MAX_CONVERSATION_CHARS:
            raise ValueError(f"the conversation is longer than {MAX_CONVERSATION_CHARS} characters")
        return self

    def system_text(self) -> str | None:
        """The text of the conversation's system messages, if it has any."""
        texts = [m.text() for m in self.messages if m.role == "system"]
        return "\n".join(texts) if texts else None

    def texts(self) -> list[str]:
        """Every message's text, for an estimate of the input tokens."""
        return [m.text() for m in self.messages]


# --- into each provider's messages -------------------------------------------------------------


def _steps(message: UIMessage) -> list[list[Part]]:
    """An assistant message's parts, one list per step (a step-start part begins a step)."""
    steps: list[list[Part]] = [[]]
    for part in message.parts:
        if isinstance(part, StepStartPart):
            if steps[-1]:
                steps.append([])
        else:
            steps[-1].append(part)
    return [step for step in steps if step]


def _finished_calls(step: list[Part]) -> list[ToolPart]:
    return [
        p
        for p in step
        if isinstance(p, ToolPart) and p.state in ("output-available", "output-error")
    ]


def tool_result_text(part: ToolPart) -> str:
    """What the model is told a tool returned: its output, or the error, as JSON text."""
    if part.state == "output-error":
        return json.dumps({"error": part.errorText or "The tool failed."})
    return json.dumps(part.output)


def _arguments(tool_input: JsonValue) -> str:
    # A call whose input was not valid JSON keeps the text the model sent.
    return tool_input if isinstance(tool_input, str) else json.dumps(tool_input)


def to_openai_responses_input(messages: list[UIMessage]) -> list[dict[str, Any]]:
    """The history as Responses API input items (the system prompt goes in `instructions`)."""
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "user":
            items.append({"role": "user", "content": message.text()})
            continue
        if message.role != "assistant":
            continue
        for step in _steps(message):
            text = "".join(p.text for p in step if isinstance(p, TextPart))
            if text:
                items.append({"role": "assistant", "content": text})
            for call in _finished_calls(step):
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.toolCallId,
                        "name": call.tool_name,
                        "arguments": _arguments(call.input),
                    }
                )
                items.append(
                    {
                        "type": "function_call_output",
                        "call_id": call.toolCallId,
                        "output": tool_result_text(call),
                    }
                )
    return items


def to_anthropic_messages(messages: list[UIMessage]) -> list[dict[str, Any]]:
    """The history as Anthropic messages: a step's text and tool_use blocks, then a user turn
    with its tool_result blocks; consecutive turns of one role are merged, as the API wants."""
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for message in messages:
        if message.role == "user":
            add("user", [{"type": "text", "text": message.text()}])
            continue
        if message.role != "assistant":
            continue
        for step in _steps(message):
            text = "".join(p.text for p in step if isinstance(p, TextPart))
            calls = _finished_calls(step)
            blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
            blocks += [
                {
                    "type": "tool_use",
                    "id": c.toolCallId,
                    "name": c.tool_name,
                    "input": c.input if isinstance(c.input, dict) else {},
                }
                for c in calls
            ]
            add("assistant", blocks)
            add(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": c.toolCallId,
                        "content": tool_result_text(c),
                        **({"is_error": True} if c.state == "output-error" else {}),
                    }
                    for c in calls
                ],
            )
    return out
