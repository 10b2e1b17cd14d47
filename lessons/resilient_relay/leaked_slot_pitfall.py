"""Wrong: the stream slot is freed only when a reply completes; failures leak it until all get 429.

The concurrency limit is released on the happy path only, not in `finally`, so each error or
disconnect leaks a slot until the server refuses everyone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import openai
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from lessons.relay_core import (
    SSE_MEDIA_TYPE,
    STREAM_HEADERS,
    ChatRequest,
    classify_before_stream,
    classify_during_stream,
    error_response,
    model_name,
    new_request_id,
    sse_data,
)

MAX_STREAMS = 1


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.openai = openai.AsyncOpenAI(max_retries=0)
    app.state.open_streams = 0
    yield
    await app.state.openai.close()


app = FastAPI(lifespan=lifespan)


@app.post("/chat/stream")
async def chat_stream(body: ChatRequest, request: Request) -> Response:
    state = request.app.state
    request_id = new_request_id()
    if state.open_streams >= MAX_STREAMS:
        body_ = {
            "code": "too_many_streams",
            "message": "Too many streams.",
            "request_id": request_id,
        }
        return JSONResponse({"error": body_}, status_code=429, headers={"Retry-After": "1"})
    state.open_streams += 1
    try:
        stream = await state.openai.chat.completions.create(
            model=model_name("openai"),
            messages=[{"role": "user", "content": body.message}],
            stream=True,
        )
    except Exception as exc:
        state.open_streams -= 1
        return error_response(classify_before_stream(exc, request_id))

    async def events() -> AsyncIterator[str]:
        try:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield sse_data({"token": chunk.choices[0].delta.content, "done": False})
            yield sse_data({"token": "", "done": True})
            # WRONG: only reached when the reply completes; belongs in `finally`.
            state.open_streams -= 1
        except Exception as exc:
            error = classify_during_stream(exc, request_id)
            yield sse_data(
                {"error": error.message, "code": error.code, "request_id": request_id, "done": True}
            )
        finally:
            await stream.close()

    return StreamingResponse(
        events(),
        media_type=SSE_MEDIA_TYPE,
        headers={**STREAM_HEADERS, "X-Request-ID": request_id},
    )
