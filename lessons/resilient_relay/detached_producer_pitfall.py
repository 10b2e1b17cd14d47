"""Wrong: the upstream is pumped by a task nothing cancels, so a client that leaves changes nothing.

A common shape (producer task fills a queue, the response drains it) that decouples the upstream
from the response's lifetime: the disconnect cancels the response, not the pump, so the whole
reply is generated and billed for nobody.
"""

from __future__ import annotations

import asyncio
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

_DONE = object()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.openai = openai.AsyncOpenAI(max_retries=0)
    app.state.pumps = set()
    yield
    # Only at shutdown does anything stop the pumps (a client leaving never does).
    for task in app.state.pumps:
        task.cancel()
    await asyncio.gather(*app.state.pumps, return_exceptions=True)
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
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    await queue.put(
                        sse_data({"token": chunk.choices[0].delta.content, "done": False})
                    )
            await queue.put(sse_data({"token": "", "done": True}))
        except Exception as exc:
            error = classify_during_stream(exc, request_id)
            await queue.put(
                sse_data(
                    {
                        "error": error.message,
                        "code": error.code,
                        "request_id": request_id,
                        "done": True,
                    }
                )
            )
        finally:
            await queue.put(_DONE)

    # WRONG: nothing ties this task to the response; a disconnect never cancels it.
    task = asyncio.create_task(pump())
    request.app.state.pumps.add(task)
    task.add_done_callback(request.app.state.pumps.discard)

    async def events() -> AsyncIterator[str]:
        while (item := await queue.get()) is not _DONE:
            yield str(item)

    return StreamingResponse(
        events(),
        media_type=SSE_MEDIA_TYPE,
        headers={**STREAM_HEADERS, "X-Request-ID": request_id},
    )
