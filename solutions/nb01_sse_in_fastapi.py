"""Solutions for notebook 01 (the learner's stubs are generated from the regions below)."""

from __future__ import annotations

# Each region is a notebook cell and must run on its own, so it carries its own imports.
# ruff: noqa: E402, F811
# %% exercise: id_and_retry  check: lessons.toolkit.exercise_checks.nb01_sse_in_fastapi:check_id_and_retry
import json
from typing import Any


def format_event(
    event: str, payload: dict[str, Any], *, event_id: int, retry_ms: int | None = None
) -> str:
    """One SSE event: `id:`, then `retry:` only when retry_ms is given, `event:`, one JSON `data:`
    line, and the blank line that ends the event."""
    ### BEGIN SOLUTION
    lines = [f"id: {event_id}"]
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    lines.append(f"event: {event}")
    # json.dumps escapes newlines, so a token containing "\n\n" cannot end the event early.
    lines.append(f"data: {json.dumps(payload)}")
    return "\n".join(lines) + "\n\n"
    ### END SOLUTION


# %% end

# %% exercise: usage_event  check: lessons.toolkit.exercise_checks.nb01_sse_in_fastapi:check_usage_event
from collections.abc import AsyncIterable, AsyncIterator

from openai.types.chat import ChatCompletionChunk

from lessons.relay_core import sse_event


async def token_and_usage_events(chunks: AsyncIterable[ChatCompletionChunk]) -> AsyncIterator[str]:
    """`event: token` {"text": ...} per text delta, then one `event: usage` {"input_tokens",
    "output_tokens"} with the provider's own counts from its usage chunk."""
    ### BEGIN SOLUTION
    usage = None
    async for chunk in chunks:
        if chunk.usage is not None:
            usage = chunk.usage
        # The usage chunk has choices == []: index [0] would raise IndexError on it.
        if chunk.choices and chunk.choices[0].delta.content:
            yield sse_event("token", {"text": chunk.choices[0].delta.content})
    if usage is not None:
        yield sse_event(
            "usage",
            {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens},
        )
    ### END SOLUTION


# %% end

# %% exercise: native_sse  check: lessons.toolkit.exercise_checks.nb01_sse_in_fastapi:check_native_sse
from collections.abc import AsyncIterable

from fastapi.sse import ServerSentEvent
from pydantic import BaseModel, Field


class Words(BaseModel):
    words: list[str] = Field(min_length=1, max_length=50)


async def word_events(body: Words) -> AsyncIterable[ServerSentEvent]:
    """For FastAPI's `response_class=EventSourceResponse`: one `word` event per word, with id
    0, 1, 2, ... and data {"word": w}; then one `done` event with data {"count": len(words)}."""
    ### BEGIN SOLUTION
    for number, word in enumerate(body.words):
        yield ServerSentEvent(event="word", id=str(number), data={"word": word})
    yield ServerSentEvent(event="done", id=str(len(body.words)), data={"count": len(body.words)})
    ### END SOLUTION


# %% end
