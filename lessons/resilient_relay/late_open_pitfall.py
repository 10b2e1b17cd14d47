"""Wrong: opening the provider stream in the generator turns a 429 or 500 into a 200.

A first version, as many tutorials write it: the route returns a StreamingResponse at once and
the generator calls the provider. By the time the provider refuses, the 200 and headers are
sent, so a rate limit cannot be a 429 with Retry-After, and clients and monitors count it a
success.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import openai
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from lessons.relay_core import (
    SSE_MEDIA_TYPE,
    STREAM_HEADERS,
    ChatRequest,
    classify_during_stream,
    model_name,
    new_request_id,
    sse_data,
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.openai = openai.AsyncOpenAI(max_retries=0)
    yield
    await app.state.openai.close()


app = FastAPI(lifespan=lifespan)


@app.post("/chat/stream")
async def chat_stream(body: ChatRequest, request: Request) -> Response:
    request_id = new_request_id()
    client: openai.AsyncOpenAI = request.app.state.openai

    async def events() -> AsyncIterator[str]:
        stream = None
        try:
            # WRONG: opened after the route returned, so the status is already 200.
            stream = await client.chat.completions.create(
                model=model_name("openai"),
                messages=[{"role": "user", "content": body.message}],
                stream=True,
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield sse_data({"token": chunk.choices[0].delta.content, "done": False})
            yield sse_data({"token": "", "done": True})
        except Exception as exc:
            error = classify_during_stream(exc, request_id)
            yield sse_data(
                {"error": error.message, "code": error.code, "request_id": request_id, "done": True}
            )
        finally:
            if stream is not None:
                await stream.close()

    return StreamingResponse(
        events(),
        media_type=SSE_MEDIA_TYPE,
        headers={**STREAM_HEADERS, "X-Request-ID": request_id},
    )
