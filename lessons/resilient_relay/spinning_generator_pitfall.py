"""Wrong: a loop that never awaits starves the event loop and never sees the client leave.

A sync SDK call runs in a thread and fills a `queue.Queue`; the response generator polls it with
`get_nowait()` in a loop that never awaits. While it spins, no other coroutine runs: other
requests wait, and the disconnect message cannot even be read, so the reply is generated to the
end. The fix: await the next piece (`await asyncio.to_thread(q.get)`, an `asyncio.Queue`, or
better, `AsyncOpenAI` and `async for`, as the core does for relay.py).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import openai
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from lessons.relay_core import (
    SSE_MEDIA_TYPE,
    STREAM_HEADERS,
    ChatRequest,
    model_name,
    new_request_id,
    sse_data,
)

_END = object()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.openai = openai.OpenAI(max_retries=0)
    yield
    app.state.openai.close()


app = FastAPI(lifespan=lifespan)


def _produce(client: openai.OpenAI, message: str, out: queue.Queue[object]) -> None:
    try:
        stream = client.chat.completions.create(
            model=model_name("openai"), messages=[{"role": "user", "content": message}], stream=True
        )
        with stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    out.put(chunk.choices[0].delta.content)
    finally:
        out.put(_END)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/chat/stream")
async def chat_stream(body: ChatRequest, request: Request) -> Response:
    pieces: queue.Queue[object] = queue.Queue()
    threading.Thread(
        target=_produce, args=(request.app.state.openai, body.message, pieces), daemon=True
    ).start()

    def drain() -> Iterator[object]:
        while True:
            try:
                # WRONG: never blocks, never awaits; the loop spins until the reply ends.
                yield pieces.get_nowait()
            except queue.Empty:
                continue

    async def events() -> AsyncIterator[str]:
        for piece in drain():
            if piece is _END:
                break
            yield sse_data({"token": piece, "done": False})
        yield sse_data({"token": "", "done": True})

    return StreamingResponse(
        events(),
        media_type=SSE_MEDIA_TYPE,
        headers={**STREAM_HEADERS, "X-Request-ID": new_request_id()},
    )
