"""The app under test: the original lesson's POST /chat/stream, relayed from AsyncOpenAI."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import Response
from openai import AsyncOpenAI
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

# What a relay does with the provider's opened stream: the SSE text the client receives.
Relay = Callable[[AsyncIterator[ChatCompletionChunk], str], AsyncIterator[str]]


def model_name() -> str:
    return os.environ.get("OPENAI_MODEL", "gpt-4o-mini")


async def relay_tokens(
    stream: AsyncIterator[ChatCompletionChunk], request_id: str
) -> AsyncIterator[str]:
    """Token events, then exactly one terminal event; the upstream is closed in every case."""
    try:
        async for chunk in stream:
            # A usage-only last chunk has no choices.
            if chunk.choices and chunk.choices[0].delta.content:
                yield sse_data({"token": chunk.choices[0].delta.content, "done": False})
        yield sse_data({"token": "", "done": True})
    except Exception as exc:  # CancelledError (client gone) is not an Exception: it passes through.
        error = classify_during_stream(exc, request_id)
        yield sse_data(
            {"error": error.message, "code": error.code, "request_id": request_id, "done": True}
        )
    finally:
        # Shielded: after a disconnect the task is cancelled, and an unshielded await here would
        # be cancelled too, leaving the provider generating tokens nobody reads.
        with anyio.CancelScope(shield=True):
            await stream.close()  # type: ignore[attr-defined]


def create_app(relay: Relay = relay_tokens) -> FastAPI:
    """A fresh app (so a test or a pitfall can wrap one without touching another)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Created here, not at import: importing needs no key, and the client lives on the
        # server's own event loop. Base URL and key come from the SDK's environment variables.
        app.state.openai = AsyncOpenAI()
        try:
            yield
        finally:
            await app.state.openai.close()

    app = FastAPI(title="Chat stream under test", lifespan=lifespan)

    @app.post("/chat/stream")
    async def chat_stream(body: ChatRequest, request: Request) -> Response:
        request_id = new_request_id()
        client: AsyncOpenAI = request.app.state.openai
        try:
            # Returns once the provider's response headers are in: its HTTP errors land here,
            # while this route can still answer with a status code.
            stream = await client.chat.completions.create(
                model=model_name(),
                messages=[
                    {"role": "system", "content": body.system_prompt},
                    {"role": "user", "content": body.message},
                ],
                stream=True,
                max_tokens=500,
            )
        except Exception as exc:
            return error_response(classify_before_stream(exc, request_id))
        return streaming_response(relay(stream, request_id), request_id=request_id)

    return app


app = create_app()
