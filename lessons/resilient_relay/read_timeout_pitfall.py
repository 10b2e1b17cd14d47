"""Wrong: a timeout around each read of the provider's stream, for keep-alives, ends the reply.

A first version, as many tutorials write it: wait for the next chunk with a timeout, and when
the timeout fires send a `: ping` comment and wait again. It looks right, and it is right for a
provider that is never slow. But the timeout cancels the read it surrounds: the SDK's iterator
receives the CancelledError at its own `await`, and an async generator that an exception ran
through is finished. The next read raises StopAsyncIteration, so the loop ends as if the reply
were complete: the client gets a `done` after the first silence longer than the keep-alive
interval, with the rest of the reply never read. The core keeps time in a separate task, the
watchdog, and never interrupts a read to send a keep-alive (lessons/relay_core/watchdog.py).
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
    sse_comment,
    sse_data,
)

KEEPALIVE_S = 0.2


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
        chunks = aiter(stream)
        try:
            while True:
                try:
                    # WRONG: when this fires, it cancels the read, and the SDK's iterator with it.
                    async with asyncio.timeout(KEEPALIVE_S):
                        chunk = await anext(chunks)
                except TimeoutError:
                    yield sse_comment("ping")
                    continue
                except StopAsyncIteration:
                    break
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
