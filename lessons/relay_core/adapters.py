"""Adapters: each provider's SDK stream, turned into the core's items (`relay_core.events`).

OpenAI Chat Completions sends data-only chunks ending in `[DONE]`; the Responses API and
Anthropic send named events; usage and the stop reason arrive in different places in each. An
adapter reads one provider's SDK stream and yields `Token`, `Reasoning`, `ToolCallDelta`, `Usage`
and `Finish` in wire order, so the code that writes the response never needs to know which
provider it is talking to.

What else real streams contain, and what the adapters do with it:
- Anthropic `ping` events and event types this code does not know: ignored (the providers
  document that new event types may appear; the relay sends its own keep-alives);
- Anthropic signature and citation deltas: passed over (they matter to a client that sends the
  thinking back to the API, which a relay to a browser does not);
- a stream that ends without its end marker yields no `Finish`: the core then reports the reply
  as cut short.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from lessons.relay_core.errors import ErrorCode, StreamFailed
from lessons.relay_core.events import (
    ANTHROPIC_STOP_REASONS,
    Finish,
    Reasoning,
    StreamItem,
    Token,
    ToolCallDelta,
    Usage,
)


async def openai_chat_events(chunks: AsyncIterable[Any]) -> AsyncIterator[StreamItem]:
    """Chat Completions chunks -> items. Open the stream with
    `stream_options={"include_usage": True}`, or no usage is reported at all."""
    async for chunk in chunks:
        # With include_usage the last chunk has `choices == []` and carries the usage.
        if chunk.usage is not None:
            yield Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        delta = choice.delta
        if delta.content:
            yield Token(delta.content)
        if delta.tool_calls:
            for call in delta.tool_calls:
                function = call.function
                yield ToolCallDelta(
                    index=call.index,
                    id=call.id,
                    name=function.name if function else None,
                    arguments=(function.arguments or "") if function else "",
                )
        if choice.finish_reason is not None:
            yield Finish(choice.finish_reason)


async def openai_responses_events(events: AsyncIterable[Any]) -> AsyncIterator[StreamItem]:
    """OpenAI Responses API events -> items."""
    # Function calls are keyed by output_index on the wire; number them 0, 1, ... like Chat.
    calls: dict[int, int] = {}
    async for event in events:
        kind = event.type
        if kind == "response.output_text.delta":
            if event.delta:
                yield Token(event.delta)
        elif kind == "response.reasoning_summary_text.delta":
            if event.delta:
                yield Reasoning(event.delta)
        elif kind == "response.output_item.added" and event.item.type == "function_call":
            calls[event.output_index] = len(calls)
            yield ToolCallDelta(calls[event.output_index], event.item.call_id, event.item.name, "")
        elif kind == "response.function_call_arguments.delta":
            yield ToolCallDelta(calls.get(event.output_index, 0), None, None, event.delta)
        elif kind in ("response.completed", "response.incomplete"):
            response = event.response
            if response.usage is not None:
                yield Usage(response.usage.input_tokens, response.usage.output_tokens)
            if kind == "response.incomplete":
                details = response.incomplete_details
                reason = details.reason if details is not None else None
                yield Finish("content_filter" if reason == "content_filter" else "length")
            else:
                yield Finish("tool_calls" if calls else "stop")
        elif kind == "response.failed":
            # The SDK raises for an `error` event but yields `response.failed` as a normal event.
            raise StreamFailed(ErrorCode.PROVIDER_ERROR, "OpenAI response.failed")
        # Everything else (created, in_progress, *.done) is state we do not need: the deltas
        # above already carried the text.


async def anthropic_events(events: AsyncIterable[Any]) -> AsyncIterator[StreamItem]:
    """Anthropic Messages raw stream events (`messages.create(stream=True)`) -> items.

    Reads only the raw event types, so it also accepts the `messages.stream()` helper, whose
    extra derived events (such as `text`) it skips.
    """
    input_tokens = 0
    stop_reason: str | None = None
    # Content block index -> tool-call number, for the input_json deltas of tool_use blocks.
    tool_blocks: dict[int, int] = {}
    async for event in events:
        kind = event.type
        if kind == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                if delta.text:
                    yield Token(delta.text)
            elif delta.type == "input_json_delta":
                if delta.partial_json:
                    yield ToolCallDelta(
                        tool_blocks.get(event.index, 0), None, None, delta.partial_json
                    )
            elif delta.type == "thinking_delta" and delta.thinking:
                yield Reasoning(delta.thinking)
        elif kind == "message_start":
            input_tokens = event.message.usage.input_tokens
        elif kind == "content_block_start" and event.content_block.type == "tool_use":
            tool_blocks[event.index] = len(tool_blocks)
            block = event.content_block
            yield ToolCallDelta(tool_blocks[event.index], block.id, block.name, "")
        elif kind == "message_delta":
            # Cumulative totals, not increments: the last one is the bill.
            if event.usage.input_tokens is not None:
                input_tokens = event.usage.input_tokens
            yield Usage(input_tokens, event.usage.output_tokens)
            stop_reason = event.delta.stop_reason or stop_reason
        elif kind == "message_stop":
            reason = stop_reason or "end_turn"
            yield Finish(ANTHROPIC_STOP_REASONS.get(reason, reason))
