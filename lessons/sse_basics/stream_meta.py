"""POST /chat/stream-meta: start, token and done events with real usage and time to first token."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import Response
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletionChunk

from lessons.relay_core import (
    MessageRequest,
    classify_before_stream,
    classify_during_stream,
    error_response,
    new_request_id,
    sse_data,
    streaming_response,
)
from lessons.sse_basics.openai_client import (
    MAX_COMPLETION_TOKENS,
    get_openai,
    openai_lifespan,
    openai_model,
)

logger = logging.getLogger("lessons.sse_basics")
router = APIRouter()


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


async def relay_with_metadata(
    stream: AsyncStream[ChatCompletionChunk], *, model: str, started: float, request_id: str
) -> AsyncIterator[str]:
    """start, then one token event per text delta, then done (or one error event)."""
    yield sse_data({"event": "start", "model": model})
    ttft_ms: float | None = None
    finished = False
    completion_tokens: int | None = None
    try:
        async for chunk in stream:
            # With include_usage the provider's last chunk carries usage and no choices at all.
            if chunk.usage is not None:
                completion_tokens = chunk.usage.completion_tokens
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            if choice.delta.content:
                if ttft_ms is None:
                    ttft_ms = _ms_since(started)
                yield sse_data({"event": "token", "token": choice.delta.content})
            if choice.finish_reason is not None:
                finished = True
        if not finished:
            raise ConnectionError("provider stream ended without a finish_reason")
        if completion_tokens is None:
            # Some OpenAI-compatible servers ignore stream_options; counting chunks instead
            # would report a number that is not what the provider bills.
            logger.warning("no usage in the provider stream: request_id=%s", request_id)
        latency_ms = _ms_since(started)
        yield sse_data(
            {
                "event": "done",
                "tokens": completion_tokens if completion_tokens is not None else 0,
                "latency_ms": latency_ms,
                # An empty reply has no first token; its time to first token is the whole wait.
                "ttft_ms": ttft_ms if ttft_ms is not None else latency_ms,
            }
        )
    except Exception as exc:
        error = classify_during_stream(exc, request_id)
        yield sse_data(
            {
                "event": "error",
                "message": error.message,
                "code": error.code,
                "request_id": request_id,
            }
        )
    finally:
        await stream.close()


@router.post("/chat/stream-meta")
async def chat_stream_meta(
    body: MessageRequest, client: Annotated[AsyncOpenAI, Depends(get_openai)]
) -> Response:
    # Timed from the request's arrival: what the client waits for, the provider's queue included.
    started = time.perf_counter()
    request_id = new_request_id()
    model = openai_model()
    try:
        stream = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": body.message}],
            stream=True,
            # Ask for the provider's own token count in a final chunk.
            stream_options={"include_usage": True},
            max_completion_tokens=MAX_COMPLETION_TOKENS,
        )
    except Exception as exc:
        return error_response(classify_before_stream(exc, request_id))
    return streaming_response(
        relay_with_metadata(stream, model=model, started=started, request_id=request_id),
        request_id=request_id,
    )


def create_app() -> FastAPI:
    app = FastAPI(title="SSE basics: /chat/stream-meta", lifespan=openai_lifespan)
    app.include_router(router)
    return app


app = create_app()
