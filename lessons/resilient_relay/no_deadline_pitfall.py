"""Wrong: no limit on silence, so a stalled provider holds the connection open for minutes.

A first version, as many tutorials write it, with the errors handled: the stream is opened
before the 200 and a failure is one terminal event. The SDK's default read timeout (600 s) is
the only bound, so a client behind a proxy is cut at the proxy's idle limit with no terminal
event, and the slot, socket and memory stay taken meanwhile. The fault matrix shows its other
defects: a stream that stops without the provider's end marker still ends with `done`, and
anyone may call it (no client tokens, no budgets).
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
async def chat_stream(body: ChatRequest, request: Request) -> Response:
    request_id = new_request_id()
    try:
        stream = await request.app.state.openai.chat.completions.create(
            model=model_name("openai"),
            messages=[{"role": "user", "content": body.message}],
            stream=True,
        )
    except Exception as exc:
        return error_response(classify_before_stream(exc, request_id))

    async def events() -> AsyncIterator[str]:
        try:
            # WRONG: nothing bounds how long each `async for` step may wait.
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
