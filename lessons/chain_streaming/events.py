"""LangChain's streams turned into the core's items, with the provider's end marker kept.

The core sends `done` only for a reply whose end marker arrived (a `Finish`). LangChain hides the
provider's stream behind its own, but the marker survives: a model's last chunk carries
`finish_reason` in its `response_metadata`, and the model's end callback sees the whole message.
A stream that was cut short ends without one, and the client is told it was cut short.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables.schema import StreamEvent

from lessons.relay_core import CustomEvent, Finish, StreamItem, Token, Usage


def _usage(message: BaseMessage) -> Usage | None:
    usage = getattr(message, "usage_metadata", None)
    return Usage(usage["input_tokens"], usage["output_tokens"]) if usage else None


def _finish_reason(message: BaseMessage) -> str | None:
    reason = message.response_metadata.get("finish_reason")
    return str(reason) if reason else None


async def message_chunk_events(chunks: AsyncIterable[AIMessageChunk]) -> AsyncIterator[StreamItem]:
    """`llm.astream(...)` chunks -> items."""
    async for chunk in chunks:
        # .text, not .content: content can be a list of blocks for some models.
        if chunk.text:
            yield Token(chunk.text)
        if (usage := _usage(chunk)) is not None:
            yield Usage(usage.input_tokens, usage.output_tokens)
        if (reason := _finish_reason(chunk)) is not None:
            yield Finish(reason)


class ModelEnd(AsyncCallbackHandler):
    """Records how the chain's model call ended: its finish reason and usage.

    A chain's `.astream` yields its last step's output (text pieces, for a parser), which says
    nothing of the model's end marker; this callback hears it from the model itself.
    """

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    async def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        generation = response.generations[0][0] if response.generations else None
        message = getattr(generation, "message", None)
        if isinstance(message, BaseMessage):
            self.finish_reason = _finish_reason(message) or self.finish_reason
            self.usage = _usage(message) or self.usage


async def text_piece_events(
    pieces: AsyncIterable[str], model_end: ModelEnd
) -> AsyncIterator[StreamItem]:
    """A `prompt | llm | StrOutputParser()` chain's `.astream` -> items."""
    async for piece in pieces:
        # The parser passes on the model's empty first chunk (the role) as "".
        if piece:
            yield Token(piece)
    if model_end.usage is not None:
        yield model_end.usage
    if model_end.finish_reason is not None:
        yield Finish(model_end.finish_reason)


async def chain_event_items(
    events: AsyncIterable[StreamEvent], reported_steps: frozenset[str]
) -> AsyncIterator[StreamItem]:
    """`astream_events(version="v2")` -> items: the model's tokens, usage and finish, and a
    `step` event when one of `reported_steps` (a non-streaming step) finishes."""
    async for event in events:
        kind, data = event["event"], event["data"]
        if kind == "on_chat_model_stream":
            if text := data["chunk"].text:
                yield Token(text)
        elif kind == "on_chat_model_end":
            # The model's whole message: usage and finish reason, aggregated from its chunks.
            message = data["output"]
            if (usage := _usage(message)) is not None:
                yield usage
            if (reason := _finish_reason(message)) is not None:
                yield Finish(reason)
        elif kind == "on_chain_end" and event["name"] in reported_steps:
            yield CustomEvent("step", {"name": event["name"], "output": data["output"]})
