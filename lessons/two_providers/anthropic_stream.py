"""POST /anthropic/stream: the original lesson's Anthropic route, on AsyncAnthropic, made safe."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from anthropic import AsyncAnthropic
from anthropic.lib.streaming import AsyncMessageStream
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import Field

from lessons.relay_core import (
    MAX_SYSTEM_CHARS,
    MessageRequest,
    classify_before_stream,
    classify_during_stream,
    error_response,
    new_request_id,
    sse_data,
    streaming_response,
)
from lessons.two_providers.relay import MAX_OUTPUT_TOKENS, anthropic_model


class AnthropicRequest(MessageRequest):
    """The original lesson's body: a user message (bounded, non-blank) and a system prompt."""

    system: str = Field(default="You are a helpful assistant.", max_length=MAX_SYSTEM_CHARS)


async def stream_tokens(
    stream: AsyncMessageStream, upstream: AsyncExitStack, request_id: str
) -> AsyncIterator[str]:
    """The original lesson's events: tokens, then done; or one terminal error event."""
    try:
        async for text in stream.text_stream:
            yield sse_data({"token": text, "done": False})
        yield sse_data({"token": "", "done": True})
    except Exception as exc:
        # e.g. an `overloaded_error` event mid-stream: the SDK raises APIStatusError (status 200).
        error = classify_during_stream(exc, request_id)
        yield sse_data(
            {"error": error.message, "code": error.code, "request_id": request_id, "done": True}
        )
    finally:
        # Also runs when the client disconnects: closing the stream stops the generation.
        await upstream.aclose()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.anthropic = AsyncAnthropic()
    try:
        yield
    finally:
        await app.state.anthropic.close()


async def anthropic_stream(request: Request, body: AnthropicRequest) -> Response:
    """Stream Claude's reply as `data: {"token": ..., "done": ...}` events."""
    request_id = new_request_id()
    client: AsyncAnthropic = request.app.state.anthropic
    upstream = AsyncExitStack()
    try:
        # Entering the helper sends the request and returns once the response headers are in,
        # so an HTTP error from Anthropic surfaces here, while we can still answer with a status.
        stream = await upstream.enter_async_context(
            client.messages.stream(
                model=anthropic_model(),
                max_tokens=MAX_OUTPUT_TOKENS,
                system=body.system,
                messages=[{"role": "user", "content": body.message}],
            )
        )
    except Exception as exc:
        await upstream.aclose()
        return error_response(classify_before_stream(exc, request_id))
    return streaming_response(stream_tokens(stream, upstream, request_id), request_id=request_id)


def add_routes(app: FastAPI) -> None:
    app.post("/anthropic/stream", response_class=Response)(anthropic_stream)


app = FastAPI(title="Anthropic relay", lifespan=lifespan)
add_routes(app)
