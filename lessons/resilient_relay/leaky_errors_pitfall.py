"""Wrong: sends str(exc) to the client: provider error bodies, request ids and internals leak out.

Otherwise a careful first version (the stream is opened before the 200, a failure is one
terminal event, the upstream is closed in `finally`), which is why the fault matrix uses it for
its "nothing secret or internal" check.
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
    except openai.APIStatusError as exc:
        # WRONG: the provider's own message, type and request id go to the client.
        return JSONResponse(
            {"error": {"code": "provider_error", "message": str(exc), "request_id": request_id}},
            status_code=502,
        )

    async def events() -> AsyncIterator[str]:
        try:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield sse_data({"token": chunk.choices[0].delta.content, "done": False})
            yield sse_data({"token": "", "done": True})
        except Exception as exc:
            # WRONG: str(exc) is for the log, not for the client.
            yield sse_data({"error": f"{type(exc).__name__}: {exc}", "done": True})
        finally:
            await stream.close()

    return StreamingResponse(
        events(),
        media_type=SSE_MEDIA_TYPE,
        headers={**STREAM_HEADERS, "X-Request-ID": request_id},
    )
