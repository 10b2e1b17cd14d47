"""Wrong: a `dict` body, so empty or huge messages cost a provider call.

A first version, as many tutorials write it: no model, no bounds. `{}` becomes an empty prompt
and 10 MB of text is forwarded as it is, each a provider call (and a bill) for a request that a
model with bounds would have refused with a readable 422.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from lessons.relay_core import (
    SSE_MEDIA_TYPE,
    STREAM_HEADERS,
    classify_before_stream,
    classify_during_stream,
    error_response,
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
async def chat_stream(body: dict[str, Any], request: Request) -> Response:
    request_id = new_request_id()
    try:
        stream = await request.app.state.openai.chat.completions.create(
            model=model_name("openai"),
            # WRONG: whatever arrived, or "", goes to the paid API.
            messages=[{"role": "user", "content": str(body.get("message", ""))}],
            stream=True,
        )
    except Exception as exc:
        return error_response(classify_before_stream(exc, request_id))

    async def events() -> AsyncIterator[str]:
        try:
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
            await stream.close()

    return StreamingResponse(
        events(),
        media_type=SSE_MEDIA_TYPE,
        headers={**STREAM_HEADERS, "X-Request-ID": request_id},
    )
