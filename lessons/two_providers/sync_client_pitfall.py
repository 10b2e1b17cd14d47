"""Wrong: a sync OpenAI client iterated inside an `async def` generator blocks the event loop.

This is the original lesson's pattern. Every `for chunk in stream` waits for the network on the
event loop's own thread, so while one reply streams no other request is served: ten users get
their replies one after another. Everything else here is as in the correct relays, so that a
measurement against them shows the cost of this one defect. The fix: `AsyncOpenAI`, `await` the
create call, `async for` over the stream (see lessons/two_providers/relay.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response
from openai import OpenAI, Stream
from openai.types.chat import ChatCompletionChunk

from lessons.relay_core import (
    ChatRequest,
    classify_before_stream,
    classify_during_stream,
    error_response,
    new_request_id,
    sse_data,
    streaming_response,
)
from lessons.two_providers.relay import MAX_OUTPUT_TOKENS, openai_model


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.openai = OpenAI()  # the defect: a blocking client in an async app
    try:
        yield
    finally:
        app.state.openai.close()


async def stream_tokens(stream: Stream[ChatCompletionChunk], request_id: str) -> AsyncIterator[str]:
    try:
        for chunk in stream:  # blocks the loop until the next chunk arrives
            if chunk.choices and chunk.choices[0].delta.content:
                yield sse_data({"token": chunk.choices[0].delta.content, "done": False})
        yield sse_data({"token": "", "done": True})
    except Exception as exc:
        error = classify_during_stream(exc, request_id)
        yield sse_data(
            {"error": error.message, "code": error.code, "request_id": request_id, "done": True}
        )
    finally:
        stream.close()


async def chat_stream(request: Request, body: ChatRequest) -> Response:
    request_id = new_request_id()
    client: OpenAI = request.app.state.openai
    try:
        stream = client.chat.completions.create(  # also blocks the loop until headers arrive
            model=openai_model(),
            messages=[
                {"role": "system", "content": body.system_prompt},
                {"role": "user", "content": body.message},
            ],
            max_completion_tokens=MAX_OUTPUT_TOKENS,
            stream=True,
        )
    except Exception as exc:
        return error_response(classify_before_stream(exc, request_id))
    return streaming_response(stream_tokens(stream, request_id), request_id=request_id)


app = FastAPI(title="PITFALL: sync client in an async generator", lifespan=lifespan)
app.post("/chat/stream", response_class=Response)(chat_stream)
