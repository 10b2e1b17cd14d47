"""The AI SDK's UI message stream protocol (v1), as a shape of the core.

What `useChat` (`@ai-sdk/react` 4.x, `ai` 7.x) reads: a `text/event-stream` response with the
header `x-vercel-ai-ui-message-stream: v1`, whose events are `data: {json}` lines (no `event:`,
no `id:`), each one chunk of the protocol, ending with `data: [DONE]`. The chunk types and their
fields are those of `uiMessageChunkSchema` in the `ai` package (`ui-message-chunks.ts`):

    start {messageId, messageMetadata}        start-step / finish-step
    text-start {id} / text-delta {id, delta} / text-end {id}
    reasoning-start / reasoning-delta / reasoning-end        (the same fields as text)
    tool-input-start {toolCallId, toolName} / tool-input-delta {toolCallId, inputTextDelta}
    tool-input-available {toolCallId, toolName, input} / tool-input-error {..., errorText}
    tool-output-available {toolCallId, output} / tool-output-error {toolCallId, errorText}
    data-<name> {id?, data, transient?}
    finish {finishReason, messageMetadata}    error {errorText}    abort {reason}

The core decides what happens (a piece of text, the end, a failure); this shape says it in the
protocol's words, keeping what the protocol needs between chunks: the open text or reasoning
part (a text part opens before its first delta and closes before anything else), the tool call
ids of the current step, whether a step is open. One instance frames one reply.

The endings: a complete reply ends with `finish` (its finish reason, and the usage in the
message's metadata); a failure with `error`, whose `errorText` is the error contract's fixed
message (and, as extra fields the schema lets through, its `code` and `request_id`); a reply
stopped on request with `abort`. Each is followed by `data: [DONE]`, and nothing after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lessons.relay_core import ErrorCode, EventShape, RelayError, StreamSummary, Usage
from lessons.relay_core.events import CustomEvent, Frame, Reasoning, StreamItem, ToolCallDelta
from lessons.relay_core.shapes import ReplayEvents
from lessons.relay_core.wire import encode_json

UI_STREAM_HEADERS = {"x-vercel-ai-ui-message-stream": "v1"}
DONE = b"data: [DONE]\n\n"

# The core's finish reasons (Chat Completions' words) in the protocol's words.
FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",
    "content_filter": "content-filter",
}


# --- the items a turn streams, besides the core's (Token, Reasoning, ToolCallDelta, Usage) -----


@dataclass(frozen=True, slots=True)
class StepStart:
    """A provider call begins (a turn with tools makes one per step)."""


@dataclass(frozen=True, slots=True)
class StepEnd:
    """A provider call ended with its end marker; its tool calls are known."""


@dataclass(frozen=True, slots=True)
class ToolInputAvailable:
    """A tool call's input, complete and valid: the server runs the tool now."""

    tool_call_id: str
    tool_name: str
    input: Any


@dataclass(frozen=True, slots=True)
class ToolInputError:
    """A tool call whose input is not valid JSON, or not what the tool takes."""

    tool_call_id: str
    tool_name: str
    input: Any  # what could be read of it: the parsed JSON, or the raw text
    error_text: str


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """What a tool returned."""

    tool_call_id: str
    output: Any


@dataclass(frozen=True, slots=True)
class ToolOutputError:
    """A tool that failed: the client shows `error_text`, the model is told it failed."""

    tool_call_id: str
    error_text: str


@dataclass(frozen=True, slots=True)
class DataPart:
    """A `data-<name>` part: the route's own data (a tool's progress, say). A part with an
    `id` is updated in place by later parts with the same id; a transient one is handed to the
    client's `onData` and not kept in the message."""

    name: str
    data: Any
    id: str | None = None
    transient: bool = False


TurnItem = (
    StreamItem
    | StepStart
    | StepEnd
    | ToolInputAvailable
    | ToolInputError
    | ToolOutput
    | ToolOutputError
    | DataPart
)


def chunk(payload: dict[str, Any]) -> bytes:
    """One chunk on the wire: `data: {json}` and the blank line that ends the event."""
    return b"data: " + encode_json(payload) + b"\n\n"


def usage_metadata(usage: Usage) -> dict[str, int]:
    """Usage in the AI SDK's own words (`LanguageModelUsage`)."""
    return {
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "totalTokens": usage.input_tokens + usage.output_tokens,
    }


class UIMessageStream(EventShape):
    """Frames one assistant reply as UI message stream chunks."""

    headers = UI_STREAM_HEADERS

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        self._parts = 0  # numbers the text and reasoning parts of this message
        self._text: str | None = None  # the open text part's id
        self._reasoning: str | None = None  # the open reasoning part's id
        self._step_open = False
        # Tool call index -> toolCallId, for the current step (indices restart each step).
        self._calls: dict[int, str] = {}
        self._steps = 0

    # --- parts and steps ------------------------------------------------------------------------

    def _part_id(self, kind: str) -> str:
        self._parts += 1
        return f"{kind}-{self._parts}"

    def _open_step(self) -> bytes:
        if self._step_open:
            return b""
        self._step_open = True
        self._steps += 1
        self._calls = {}
        return chunk({"type": "start-step"})

    def _close_parts(self) -> bytes:
        out = b""
        if self._text is not None:
            out += chunk({"type": "text-end", "id": self._text})
            self._text = None
        if self._reasoning is not None:
            out += chunk({"type": "reasoning-end", "id": self._reasoning})
            self._reasoning = None
        return out

    def _close_step(self) -> bytes:
        out = self._close_parts()
        if self._step_open:
            self._step_open = False
            out += chunk({"type": "finish-step"})
        return out

    def tool_call_id(self, index: int) -> str | None:
        """The id of tool call `index` of the current step, once its first piece was framed."""
        return self._calls.get(index)

    # --- the shape ------------------------------------------------------------------------------

    def start(self, summary: StreamSummary) -> bytes:
        metadata = {"provider": summary.provider, "model": summary.model}
        return chunk({"type": "start", "messageId": self.message_id, "messageMetadata": metadata})

    def token(self, text: str) -> bytes:
        out = self._open_step()
        if self._text is None:
            if self._reasoning is not None:
                out += self._close_parts()
            self._text = self._part_id("text")
            out += chunk({"type": "text-start", "id": self._text})
        return out + chunk({"type": "text-delta", "id": self._text, "delta": text})

    def other(self, item: StreamItem | TurnItem, summary: StreamSummary) -> bytes | None:
        if isinstance(item, Reasoning):
            out = self._open_step()
            if self._reasoning is None:
                out += self._close_parts()
                self._reasoning = self._part_id("reasoning")
                out += chunk({"type": "reasoning-start", "id": self._reasoning})
            return out + chunk(
                {"type": "reasoning-delta", "id": self._reasoning, "delta": item.text}
            )
        if isinstance(item, ToolCallDelta):
            return self._tool_delta(item)
        if isinstance(item, StepStart):
            return self._close_step() + self._open_step()
        if isinstance(item, StepEnd):
            return self._close_step() or None
        if isinstance(item, ToolInputAvailable):
            payload = {
                "type": "tool-input-available",
                "toolCallId": item.tool_call_id,
                "toolName": item.tool_name,
                "input": item.input,
            }
            return self._close_parts() + chunk(payload)
        if isinstance(item, ToolInputError):
            payload = {
                "type": "tool-input-error",
                "toolCallId": item.tool_call_id,
                "toolName": item.tool_name,
                "input": item.input,
                "errorText": item.error_text,
            }
            return self._close_parts() + chunk(payload)
        if isinstance(item, ToolOutput):
            payload = {
                "type": "tool-output-available",
                "toolCallId": item.tool_call_id,
                "output": item.output,
            }
            return self._close_parts() + chunk(payload)
        if isinstance(item, ToolOutputError):
            payload = {
                "type": "tool-output-error",
                "toolCallId": item.tool_call_id,
                "errorText": item.error_text,
            }
            return self._close_parts() + chunk(payload)
        if isinstance(item, DataPart | CustomEvent):
            return self._data(item)
        return None  # Usage is read by the core; the done event reports it

    def _tool_delta(self, item: ToolCallDelta) -> bytes | None:
        out = self._open_step() + self._close_parts()
        call_id = self._calls.get(item.index)
        if call_id is None:
            if item.name is None:
                return out or None  # a fragment of a call that never started: nothing to add to
            call_id = item.id or f"call-{self._steps}-{item.index}"
            self._calls[item.index] = call_id
            out += chunk({"type": "tool-input-start", "toolCallId": call_id, "toolName": item.name})
        if item.arguments:
            delta = {
                "type": "tool-input-delta",
                "toolCallId": call_id,
                "inputTextDelta": item.arguments,
            }
            out += chunk(delta)
        return out or None

    def _data(self, item: DataPart | CustomEvent) -> bytes:
        payload: dict[str, Any] = {"type": f"data-{item.name}", "data": item.data}
        if isinstance(item, DataPart):
            if item.id is not None:
                payload["id"] = item.id
            if item.transient:
                payload["transient"] = True
        return self._close_parts() + chunk(payload)

    # --- endings: each followed by [DONE] -------------------------------------------------------
    #
    # The sentinel is part of the terminal bytes, not `after_terminal()`: a generation's producer
    # stores what the shape's done/error return, and a reader replays exactly that.

    def done(self, summary: StreamSummary) -> bytes:
        payload: dict[str, Any] = {
            "type": "finish",
            "finishReason": FINISH_REASONS.get(summary.finish_reason or "", "other"),
        }
        if summary.usage is not None:
            payload["messageMetadata"] = {"usage": usage_metadata(summary.usage)}
        return self._close_step() + chunk(payload) + DONE

    def error(self, error: RelayError, summary: StreamSummary) -> bytes:
        return self._close_parts() + ending(error)


def ending(error: RelayError) -> bytes:
    """The terminal chunk of a failed reply, then [DONE]: `abort` for a reply stopped on request,
    `error` otherwise; both carry the contract's fixed message, code and request id."""
    if error.code is ErrorCode.STOPPED:
        payload = {"type": "abort", "reason": error.message}
    else:
        payload = {"type": "error", "errorText": error.message}
    payload.update({"code": error.code.value, "request_id": error.request_id})
    return chunk(payload) + DONE


class UIReplay(ReplayEvents):
    """One reader of a stored reply: its chunks as the producer framed them (data only, no ids:
    the protocol has none), and a reader's own failure as an `error` chunk."""

    headers = UI_STREAM_HEADERS

    def __init__(self) -> None:
        super().__init__(retry_ms=None)

    def other(self, item: StreamItem, summary: StreamSummary) -> bytes | None:
        return item.data if isinstance(item, Frame) else None

    def error(self, error: RelayError, summary: StreamSummary) -> bytes:
        return ending(error)
