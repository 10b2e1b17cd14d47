"""POST /chat/events: named SSE events with ids, using FastAPI's native EventSourceResponse."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from itertools import count
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletionChunk

from lessons.relay_core import (
    ChatRequest,
    ErrorCode,
    RelayError,
    StreamNotStarted,
    classify_before_stream,
    classify_during_stream,
    new_request_id,
    stream_not_started_handler,
    with_keepalive,
)
from lessons.sse_basics.openai_client import (
    MAX_COMPLETION_TOKENS,
    get_openai,
    openai_lifespan,
    openai_model,
)

# FastAPI pings every 15 s on its own, a global that no route can change. A shorter ping of our
# own keeps strict proxies (some drop a connection after 10 s of silence) happy while a slow
# model works on its first token.
KEEPALIVE_INTERVAL_S = 5.0
PING = ServerSentEvent(comment="ping")


def _error_doc(code: ErrorCode) -> dict[str, Any]:
    """OpenAPI entry for an error answered before the stream starts."""
    example = RelayError(code, request_id="req_" + "0" * 32).body()
    return {
        "description": "The provider failed before the stream started: JSON, no stream.",
        "content": {"application/json": {"example": example}},
    }


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: _error_doc(ErrorCode.RATE_LIMITED),
    502: _error_doc(ErrorCode.PROVIDER_ERROR),
    503: _error_doc(ErrorCode.PROVIDER_OVERLOADED),
    504: _error_doc(ErrorCode.PROVIDER_TIMEOUT),
}


@dataclass(frozen=True)
class OpenedStream:
    stream: AsyncStream[ChatCompletionChunk]
    model: str
    request_id: str
    started: float


async def open_chat_stream(
    body: ChatRequest,
    client: Annotated[AsyncOpenAI, Depends(get_openai)],
    response: Response,
) -> AsyncIterator[OpenedStream]:
    """Open the provider's stream before FastAPI commits to a 200, and close it afterwards.

    A generator route cannot return an error response: by the time its body runs, the status
    line is on its way. A dependency runs first, so a provider failure raised here still
    becomes an HTTP status with a JSON body (see `stream_not_started_handler`). The code after
    `yield` runs once the response is over, whether it completed or the client left.
    """
    started = time.perf_counter()
    request_id = new_request_id()
    model = openai_model()
    try:
        stream = await client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": body.system_prompt},
                {"role": "user", "content": body.message},
            ],
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=MAX_COMPLETION_TOKENS,
        )
    except Exception as exc:
        raise StreamNotStarted(classify_before_stream(exc, request_id)) from exc
    # Headers set on this Response are copied onto the event stream's response.
    response.headers["X-Request-ID"] = request_id
    try:
        yield OpenedStream(stream, model, request_id, started)
    finally:
        await stream.close()


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


async def chat_events_from(opened: OpenedStream) -> AsyncIterator[ServerSentEvent]:
    """start, token..., usage, done; or one error event after start. Each event has an id."""
    ids = (str(n) for n in count())
    ttft_ms: float | None = None
    finish_reason: str | None = None
    yield ServerSentEvent(
        event="start",
        id=next(ids),
        data={"provider": "openai", "model": opened.model, "request_id": opened.request_id},
    )
    try:
        async for chunk in opened.stream:
            if chunk.usage is not None:
                yield ServerSentEvent(
                    event="usage",
                    id=next(ids),
                    data={
                        "input_tokens": chunk.usage.prompt_tokens,
                        "output_tokens": chunk.usage.completion_tokens,
                    },
                )
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            if choice.delta.content:
                if ttft_ms is None:
                    ttft_ms = _ms_since(opened.started)
                yield ServerSentEvent(
                    event="token", id=next(ids), data={"text": choice.delta.content}
                )
            if choice.finish_reason is not None:
                finish_reason = choice.finish_reason
        if finish_reason is None:
            raise ConnectionError("provider stream ended without a finish_reason")
        latency_ms = _ms_since(opened.started)
        yield ServerSentEvent(
            event="done",
            id=next(ids),
            data={
                "finish_reason": finish_reason,
                "ttft_ms": ttft_ms if ttft_ms is not None else latency_ms,
                "latency_ms": latency_ms,
            },
        )
    except Exception as exc:
        error = classify_during_stream(exc, opened.request_id)
        yield ServerSentEvent(
            event="error",
            id=next(ids),
            data={"code": error.code, "message": error.message, "request_id": opened.request_id},
        )


def make_router(keepalive_interval_s: float = KEEPALIVE_INTERVAL_S) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/chat/events",
        response_class=EventSourceResponse,
        responses=ERROR_RESPONSES,
        summary="Stream a chat reply as named Server-Sent Events",
    )
    async def chat_events(
        opened: Annotated[OpenedStream, Depends(open_chat_stream)],
    ) -> AsyncIterable[ServerSentEvent]:
        """Events: `start`, `token` (one per text piece), `usage`, then `done`; or `error` as the
        last event if the provider fails mid-reply. `: ping` comments while the model is silent."""
        # aclosing: if this generator is closed, the wrapped ones are closed at once, not at GC.
        events = with_keepalive(chat_events_from(opened), keepalive_interval_s, PING)
        async with aclosing(events):
            async for event in events:
                yield event

    return router


def create_app(*, keepalive_interval_s: float = KEEPALIVE_INTERVAL_S) -> FastAPI:
    app = FastAPI(title="SSE basics: /chat/events", lifespan=openai_lifespan)
    app.add_exception_handler(StreamNotStarted, stream_not_started_handler)
    app.include_router(make_router(keepalive_interval_s))
    return app


app = create_app()
