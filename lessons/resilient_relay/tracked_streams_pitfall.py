"""Wrong: the upstream is closed only in the generator's `finally`, which may never run.

A first version as tutorials write it, plus a set of open streams kept for metrics. When the
client leaves while the route still waits for the provider to answer, nothing notices; once the
route returns, Starlette sees the client gone and never asks the generator for an item: a
generator that never started has no `finally` to run. Without the set, CPython would free
the generator at once, and with it the provider's stream, so the mistake hides (the upstream is
closed by accident, by the garbage collector). With the set keeping it alive, nothing closes the
upstream and the provider generates the whole reply for nobody. The core's EventStream closes
the upstream itself, however the response ends (lessons/relay_core/stream.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from openai import AsyncOpenAI

from lessons.relay_core import SSE_MEDIA_TYPE, STREAM_HEADERS, ChatRequest, model_name, sse_data


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The SDK's defaults, as a first version uses them: two retries, inside the awaited call.
    app.state.openai = AsyncOpenAI()
    app.state.open_streams = set()
    yield
    await app.state.openai.close()


app = FastAPI(title="PITFALL: the upstream closed only in the generator", lifespan=lifespan)


@app.get("/metrics")
async def metrics(request: Request) -> dict[str, int]:
    return {"open_streams": len(request.app.state.open_streams)}


@app.post("/chat/stream")
async def chat_stream(body: ChatRequest, request: Request) -> StreamingResponse:
    stream = await request.app.state.openai.chat.completions.create(
        model=model_name("openai"),
        messages=[{"role": "user", "content": body.message}],
        stream=True,
    )
    open_streams: set[object] = request.app.state.open_streams

    async def events() -> AsyncIterator[str]:
        try:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield sse_data({"token": chunk.choices[0].delta.content, "done": False})
            yield sse_data({"token": "", "done": True})
        finally:
            open_streams.discard(generator)
            await stream.close()  # WRONG: the only close, and it needs the generator to start

    generator = events()
    open_streams.add(generator)
    return StreamingResponse(generator, media_type=SSE_MEDIA_TYPE, headers=STREAM_HEADERS)
