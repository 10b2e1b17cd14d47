"""Wrong: a sync OpenAI client iterated inside an `async def` generator blocks the event loop.

A first version, as many tutorials write it: `OpenAI()` and `for chunk in stream` inside an
`async def` generator. Every step of that loop waits for the network on the event loop's own
thread, so while one reply streams no other request is served: ten users get their replies one
after another. The fix: `AsyncOpenAI`, whose stream is awaited and read with `async for`, as the
core's EventStream does for every lesson relay (lessons/sse_basics/chat_stream.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from openai import OpenAI

from lessons.relay_core import SSE_MEDIA_TYPE, STREAM_HEADERS, ChatRequest, model_name, sse_data


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.openai = OpenAI()  # the defect: a blocking client in an async app
    yield
    app.state.openai.close()


app = FastAPI(title="PITFALL: sync client in an async generator", lifespan=lifespan)


@app.post("/chat/stream")
async def chat_stream(body: ChatRequest, request: Request) -> StreamingResponse:
    client: OpenAI = request.app.state.openai
    stream = client.chat.completions.create(  # also blocks the loop until the headers arrive
        model=model_name("openai"),
        messages=[
            {"role": "system", "content": body.system_prompt},
            {"role": "user", "content": body.message},
        ],
        max_completion_tokens=500,
        stream=True,
    )

    async def events() -> AsyncIterator[str]:
        try:
            for chunk in stream:  # blocks the loop until the next chunk arrives
                if chunk.choices and chunk.choices[0].delta.content:
                    yield sse_data({"token": chunk.choices[0].delta.content, "done": False})
            yield sse_data({"token": "", "done": True})
        finally:
            stream.close()

    return StreamingResponse(events(), media_type=SSE_MEDIA_TYPE, headers=STREAM_HEADERS)
