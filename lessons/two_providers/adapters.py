"""Adapters that turn each provider's stream into the same small set of unified events.

OpenAI Chat Completions sends data-only chunks ending in `[DONE]`, the OpenAI Responses API and
Anthropic send named events; usage and the stop reason arrive in different places in each. An
adapter reads one provider's SDK stream and yields only these events, always in this order:

    Token* and ToolCallDelta* (interleaved as the model produced them), then Usage, then Finish

so the code that writes the SSE response never needs to know which provider it is talking to.

What else real streams contain, and what the adapters do with it:
- tool-call deltas: forwarded as ToolCallDelta (the client needs them to run the tool);
- Anthropic thinking and signature deltas, Responses reasoning summaries: passed over on purpose
  (the model's scratchpad is not the answer; a product that shows it adds a separate event);
- Anthropic `ping` events and any event type this code does not know: ignored (the provider
  documents that new event types may appear; the relay sends its own keep-alives).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

from lessons.relay_core import ErrorCode


@dataclass(frozen=True)
class Token:
    """A piece of the reply's text."""

    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call: `id` and `name` on its first piece, then argument fragments."""

    index: int  # the call's position among this reply's tool calls (0, 1, ...)
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True)
class Usage:
    """Tokens billed for the request (input) and the reply (output)."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Finish:
    """Why the reply ended, in OpenAI Chat Completions' words (stop, length, tool_calls, ...)."""

    reason: str


UnifiedEvent = Token | ToolCallDelta | Usage | Finish


class AdapterError(Exception):
    """The provider's stream ended wrongly without an SDK exception; carries the relay's code."""

    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code


# One vocabulary for `done.finish_reason`, whatever the provider said.
ANTHROPIC_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _incomplete(provider: str) -> AdapterError:
    # A stream cut cleanly at a chunk boundary ends the SDK's iteration without an exception;
    # only the missing terminator tells a finished reply from a truncated one.
    return AdapterError(
        ErrorCode.STREAM_INTERRUPTED, f"{provider} stream ended without its terminator"
    )


async def openai_chat_events(chunks: AsyncIterable[Any]) -> AsyncIterator[UnifiedEvent]:
    """Chat Completions chunks (opened with stream_options include_usage) -> unified events."""
    finish_reason: str | None = None
    usage: Usage | None = None
    async for chunk in chunks:
        # With include_usage the last chunk has `choices == []` and carries the usage.
        if chunk.usage is not None:
            usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        delta = choice.delta
        if delta.content:
            yield Token(delta.content)
        for call in delta.tool_calls or ():
            function = call.function
            yield ToolCallDelta(
                index=call.index,
                id=call.id,
                name=function.name if function else None,
                arguments=(function.arguments or "") if function else "",
            )
        if choice.finish_reason is not None:
            finish_reason = choice.finish_reason
    if finish_reason is None:
        raise _incomplete("OpenAI Chat Completions")
    if usage is not None:
        yield usage
    yield Finish(finish_reason)


async def openai_responses_events(events: AsyncIterable[Any]) -> AsyncIterator[UnifiedEvent]:
    """OpenAI Responses API events -> unified events."""
    # Function calls are keyed by output_index on the wire; number them 0, 1, ... like Chat.
    calls: dict[int, int] = {}
    usage: Usage | None = None
    finish: Finish | None = None
    async for event in events:
        kind = event.type
        if kind == "response.output_text.delta":
            if event.delta:
                yield Token(event.delta)
        elif kind == "response.output_item.added" and event.item.type == "function_call":
            calls[event.output_index] = len(calls)
            yield ToolCallDelta(calls[event.output_index], event.item.call_id, event.item.name, "")
        elif kind == "response.function_call_arguments.delta":
            yield ToolCallDelta(calls.get(event.output_index, 0), None, None, event.delta)
        elif kind in ("response.completed", "response.incomplete"):
            response = event.response
            if response.usage is not None:
                usage = Usage(response.usage.input_tokens, response.usage.output_tokens)
            if kind == "response.incomplete":
                details = response.incomplete_details
                reason = details.reason if details is not None else None
                finish = Finish("content_filter" if reason == "content_filter" else "length")
            else:
                finish = Finish("tool_calls" if calls else "stop")
        elif kind == "response.failed":
            # The SDK raises for an `error` event but yields `response.failed` as a normal event.
            raise AdapterError(ErrorCode.PROVIDER_ERROR, "OpenAI response.failed")
        # Everything else (created, in_progress, *.done, reasoning summaries) is state we do not
        # need: the deltas above already carried the text.
    # Reading on to the end of the stream (rather than returning at the terminal event) lets the
    # SDK see EOF and release the connection itself.
    if finish is None:
        raise _incomplete("OpenAI Responses")
    if usage is not None:
        yield usage
    yield finish


async def anthropic_events(events: AsyncIterable[Any]) -> AsyncIterator[UnifiedEvent]:
    """Anthropic Messages raw stream events -> unified events.

    Reads only the raw event types, so it accepts both `messages.create(stream=True)` and the
    `messages.stream()` helper (whose extra derived events, such as `text`, it skips).
    """
    input_tokens = output_tokens = 0
    stop_reason: str | None = None
    stopped = False
    # Content block index -> tool-call number, for the input_json deltas of tool_use blocks.
    tool_blocks: dict[int, int] = {}
    async for event in events:
        kind = event.type
        if kind == "message_start":
            input_tokens = event.message.usage.input_tokens
            output_tokens = event.message.usage.output_tokens
        elif kind == "content_block_start" and event.content_block.type == "tool_use":
            tool_blocks[event.index] = len(tool_blocks)
            block = event.content_block
            yield ToolCallDelta(tool_blocks[event.index], block.id, block.name, "")
        elif kind == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta" and delta.text:
                yield Token(delta.text)
            elif delta.type == "input_json_delta" and delta.partial_json:
                yield ToolCallDelta(tool_blocks.get(event.index, 0), None, None, delta.partial_json)
            # thinking_delta, signature_delta, citations_delta: passed over on purpose.
        elif kind == "message_delta":
            # Cumulative totals, not increments: overwrite, never add.
            output_tokens = event.usage.output_tokens
            if event.usage.input_tokens is not None:
                input_tokens = event.usage.input_tokens
            stop_reason = event.delta.stop_reason or stop_reason
        elif kind == "message_stop":
            stopped = True
    if not stopped:
        raise _incomplete("Anthropic")
    yield Usage(input_tokens, output_tokens)
    reason = stop_reason or "end_turn"
    yield Finish(ANTHROPIC_STOP_REASONS.get(reason, reason))
