"""Wrong: a producer task reads the provider stream and is never cancelled, so it leaks.

A first version as tutorials write it when they want a queue between the provider and the
client. When the client disconnects, the response's generator is cancelled, but the task it
started keeps reading (and paying for) the provider's tokens until the reply is complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import StreamingResponse
from openai import AsyncOpenAI

from lessons.relay_core import SSE_MEDIA_TYPE, STREAM_HEADERS, ChatRequest, model_name, sse_data

_END = object()
# Kept so the task is not garbage collected mid-stream; never cancelled, which is the bug.
_producers: set[asyncio.Task[None]] = set()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.openai = AsyncOpenAI()
    yield
    await app.state.openai.close()


router = APIRouter()


@router.post("/chat/stream")
async def chat_stream(body: ChatRequest, request: Request) -> StreamingResponse:
    stream = await request.app.state.openai.chat.completions.create(
        model=model_name("openai"),
        messages=[{"role": "user", "content": body.message}],
        stream=True,
    )
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def produce() -> None:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                await queue.put(chunk.choices[0].delta.content)
        await queue.put(_END)

    # The bug: nothing cancels this task when the generator below is cancelled.
    task = asyncio.get_running_loop().create_task(produce())
    _producers.add(task)
    task.add_done_callback(_producers.discard)

    async def events() -> AsyncIterator[str]:
        while (token := await queue.get()) is not _END:
            yield sse_data({"token": token, "done": False})
        yield sse_data({"token": "", "done": True})

    return StreamingResponse(events(), media_type=SSE_MEDIA_TYPE, headers=STREAM_HEADERS)


def create_app() -> FastAPI:
    """A fresh app (each server of it gets its own client)."""
    app = FastAPI(title="PITFALL: a producer task nobody cancels", lifespan=lifespan)
    app.include_router(router)
    return app


app = create_app()
