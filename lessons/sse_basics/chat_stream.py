"""POST /chat/stream: the original lesson's token stream, relayed from AsyncOpenAI done right."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import Response
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletionChunk

from lessons.relay_core import (
    ChatRequest,
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

router = APIRouter()


async def relay_tokens(
    stream: AsyncStream[ChatCompletionChunk], request_id: str
) -> AsyncIterator[str]:
    """The provider's chunks as `data: {"token": ..., "done": false}` events, then one terminal
    event: `{"token": "", "done": true}`, or an error event with a fixed message."""
    finished = False
    try:
        async for chunk in stream:
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            if choice.delta.content:
                yield sse_data({"token": choice.delta.content, "done": False})
            if choice.finish_reason is not None:
                finished = True
        if not finished:
            # The connection ended without a finish reason: the reply is cut short, and saying
            # "done" would present a truncated answer as a whole one.
            raise ConnectionError("provider stream ended without a finish_reason")
        yield sse_data({"token": "", "done": True})
    except Exception as exc:
        # Exception, not BaseException: a client disconnect arrives as CancelledError, and then
        # there is nobody to send an event to.
        error = classify_during_stream(exc, request_id)
        yield sse_data(
            {"error": error.message, "code": error.code, "request_id": request_id, "done": True}
        )
    finally:
        # Runs on success, on error and when the client leaves (the generator is cancelled):
        # the provider stops generating, and billing, for a reader who is gone.
        await stream.close()


@router.post("/chat/stream")
async def chat_stream(
    body: ChatRequest, client: Annotated[AsyncOpenAI, Depends(get_openai)]
) -> Response:
    request_id = new_request_id()
    try:
        # Awaiting create() returns once the provider has sent its response headers, so a
        # rate limit, an outage or a bad key is known here, while a real HTTP status can
        # still be chosen.
        stream = await client.chat.completions.create(
            model=openai_model(),
            messages=[
                {"role": "system", "content": body.system_prompt},
                {"role": "user", "content": body.message},
            ],
            stream=True,
            max_completion_tokens=MAX_COMPLETION_TOKENS,
        )
    except Exception as exc:
        return error_response(classify_before_stream(exc, request_id))
    return streaming_response(relay_tokens(stream, request_id), request_id=request_id)


def create_app() -> FastAPI:
    app = FastAPI(title="SSE basics: /chat/stream", lifespan=openai_lifespan)
    app.include_router(router)
    return app


app = create_app()
