"""Wrong: a plain `def` generator is not closed when the client disconnects; the upstream runs on.

Starlette iterates a sync generator in its threadpool, so unlike sync_client_pitfall.py this does
not block the event loop and concurrent users are served side by side. The hidden cost: when a
client goes away, nothing throws into or closes the generator, so its `finally` does not run and
the provider keeps generating (and billing) the whole reply for nobody, while a threadpool worker
(40 by default) stays busy. The fix: an `async def` generator on `AsyncOpenAI`, which is
cancelled on disconnect and closes the upstream in `finally` (see lessons/two_providers/relay.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
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
    app.state.openai = OpenAI()
    try:
        yield
    finally:
        app.state.openai.close()


def stream_tokens(stream: Stream[ChatCompletionChunk], request_id: str) -> Iterator[str]:
    try:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield sse_data({"token": chunk.choices[0].delta.content, "done": False})
        yield sse_data({"token": "", "done": True})
    except Exception as exc:
        error = classify_during_stream(exc, request_id)
        yield sse_data(
            {"error": error.message, "code": error.code, "request_id": request_id, "done": True}
        )
    finally:
        stream.close()  # the defect: on disconnect this line is not reached in time


def chat_stream(request: Request, body: ChatRequest) -> Response:
    # A plain `def` route runs in the threadpool too, so the blocking create call is harmless here.
    request_id = new_request_id()
    client: OpenAI = request.app.state.openai
    try:
        stream = client.chat.completions.create(
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
    return streaming_response(
        stream_tokens(stream, request_id),  # type: ignore[arg-type]  # Starlette accepts sync iterators
        request_id=request_id,
    )


app = FastAPI(title="PITFALL: plain def generator", lifespan=lifespan)
app.post("/chat/stream", response_class=Response)(chat_stream)
