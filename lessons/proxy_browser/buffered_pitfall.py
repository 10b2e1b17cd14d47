"""Wrong: no X-Accel-Buffering header, so nginx's default buffering holds tokens to the end.

A first version as tutorials write it, with only `Cache-Control: no-cache`. The app streams
correctly, and a client talking to it directly sees tokens as they come. Behind nginx with its
default `proxy_buffering on`, the same client receives the whole reply in one piece when the
stream ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from openai import AsyncOpenAI

from lessons.relay_core import ChatRequest, model_name, sse_data


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.openai = AsyncOpenAI()
    yield
    await app.state.openai.close()


app = FastAPI(title="Pitfall: no X-Accel-Buffering", lifespan=lifespan)


@app.post("/chat/stream")
async def chat_stream(body: ChatRequest, request: Request) -> StreamingResponse:
    stream = await request.app.state.openai.chat.completions.create(
        model=model_name("openai"),
        messages=[
            {"role": "system", "content": body.system_prompt},
            {"role": "user", "content": body.message},
        ],
        stream=True,
    )

    async def events() -> AsyncIterator[str]:
        try:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield sse_data({"token": chunk.choices[0].delta.content, "done": False})
            yield sse_data({"token": "", "done": True})
        finally:
            await stream.close()

    # The pitfall: only Cache-Control. Nothing tells a proxy that this response is a stream.
    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
