"""Wrong answers for notebook 01's exercises: each must get "not yet" from its checker."""

_FORMAT_HEAD = """
import json
from typing import Any

def format_event(event: str, payload: dict[str, Any], *, event_id: int, retry_ms=None) -> str:
"""

NO_RETRY = (
    _FORMAT_HEAD
    + """
    return f"id: {event_id}\\nevent: {event}\\ndata: {json.dumps(payload)}\\n\\n"
"""
)

RETRY_IN_SECONDS = (
    _FORMAT_HEAD
    + """
    retry = f"retry: {retry_ms / 1000}\\n" if retry_ms is not None else ""
    return f"id: {event_id}\\n{retry}event: {event}\\ndata: {json.dumps(payload)}\\n\\n"
"""
)

RAW_TEXT_NOT_JSON = (
    _FORMAT_HEAD
    + """
    retry = f"retry: {retry_ms}\\n" if retry_ms is not None else ""
    text = payload.get("text", payload)
    return f"id: {event_id}\\n{retry}event: {event}\\ndata: {text}\\n\\n"
"""
)

NO_BLANK_LINE = (
    _FORMAT_HEAD
    + """
    retry = f"retry: {retry_ms}\\n" if retry_ms is not None else ""
    return f"id: {event_id}\\n{retry}event: {event}\\ndata: {json.dumps(payload)}\\n"
"""
)

NO_ID = (
    _FORMAT_HEAD
    + """
    retry = f"retry: {retry_ms}\\n" if retry_ms is not None else ""
    return f"{retry}event: {event}\\ndata: {json.dumps(payload)}\\n\\n"
"""
)

_USAGE_HEAD = """
from collections.abc import AsyncIterable, AsyncIterator
from openai.types.chat import ChatCompletionChunk
from lessons.relay_core import sse_event

async def token_and_usage_events(chunks: AsyncIterable[ChatCompletionChunk]) -> AsyncIterator[str]:
"""

COUNTS_CHUNKS = (
    _USAGE_HEAD
    + """
    count = 0
    async for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            count += 1
            yield sse_event("token", {"text": chunk.choices[0].delta.content})
    yield sse_event("usage", {"input_tokens": 12, "output_tokens": count})
"""
)

UNGUARDED_CHOICES = (
    _USAGE_HEAD
    + """
    usage = None
    async for chunk in chunks:
        usage = chunk.usage or usage
        if chunk.choices[0].delta.content:
            yield sse_event("token", {"text": chunk.choices[0].delta.content})
    counts = {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}
    yield sse_event("usage", counts)
"""
)

NO_USAGE_EVENT = (
    _USAGE_HEAD
    + """
    async for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            yield sse_event("token", {"text": chunk.choices[0].delta.content})
"""
)

USAGE_PER_TOKEN = (
    _USAGE_HEAD
    + """
    async for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            yield sse_event("token", {"text": chunk.choices[0].delta.content})
            yield sse_event("usage", {"input_tokens": 12, "output_tokens": 7})
"""
)

_NATIVE_HEAD = """
from collections.abc import AsyncIterable
from fastapi.sse import ServerSentEvent
from pydantic import BaseModel, Field

class Words(BaseModel):
    words: list[str] = Field(min_length=1, max_length=50)

"""

HAND_BUILT_STREAMING_RESPONSE = (
    _NATIVE_HEAD
    + """
import json
from fastapi.responses import StreamingResponse

async def word_events(body: Words):
    async def gen():
        for n, word in enumerate(body.words):
            yield f"id: {n}\\nevent: word\\ndata: {json.dumps({'word': word})}\\n\\n"
        yield f"event: done\\ndata: {json.dumps({'count': len(body.words)})}\\n\\n"
    return StreamingResponse(gen(), media_type="text/event-stream")
"""
)

YIELDS_PREFORMATTED_TEXT = (
    _NATIVE_HEAD
    + """
import json

async def word_events(body: Words) -> AsyncIterable[str]:
    for n, word in enumerate(body.words):
        yield f"id: {n}\\nevent: word\\ndata: {json.dumps({'word': word})}\\n\\n"
    yield f"event: done\\ndata: {json.dumps({'count': len(body.words)})}\\n\\n"
"""
)

NO_IDS = (
    _NATIVE_HEAD
    + """
async def word_events(body: Words) -> AsyncIterable[ServerSentEvent]:
    for word in body.words:
        yield ServerSentEvent(event="word", data={"word": word})
    yield ServerSentEvent(event="done", data={"count": len(body.words)})
"""
)

RAW_DATA_WORDS = (
    _NATIVE_HEAD
    + """
async def word_events(body: Words) -> AsyncIterable[ServerSentEvent]:
    for n, word in enumerate(body.words):
        yield ServerSentEvent(event="word", id=str(n), raw_data=word)
    yield ServerSentEvent(event="done", data={"count": len(body.words)})
"""
)

UNVALIDATED_DICT_BODY = """
from collections.abc import AsyncIterable
from fastapi.sse import ServerSentEvent

async def word_events(body: dict) -> AsyncIterable[ServerSentEvent]:
    words = body.get("words", [])
    for n, word in enumerate(words):
        yield ServerSentEvent(event="word", id=str(n), data={"word": word})
    yield ServerSentEvent(event="done", data={"count": len(words)})
"""

WRONG_ANSWERS = {
    "id_and_retry": [NO_RETRY, RETRY_IN_SECONDS, RAW_TEXT_NOT_JSON, NO_BLANK_LINE, NO_ID],
    "usage_event": [COUNTS_CHUNKS, UNGUARDED_CHOICES, NO_USAGE_EVENT, USAGE_PER_TOKEN],
    "native_sse": [
        HAND_BUILT_STREAMING_RESPONSE,
        YIELDS_PREFORMATTED_TEXT,
        NO_IDS,
        RAW_DATA_WORDS,
        UNVALIDATED_DICT_BODY,
    ],
}
