"""Wrong: a plain `def` generator is never told that its client left; the upstream runs on.

Starlette iterates a sync generator in its threadpool, one thread call per `next()`, so unlike
sync_client_pitfall.py this does not block the event loop, and concurrent users are served side
by side. The cost is the disconnect. When the client leaves, Starlette cancels the response:
the thread call in progress finishes when the next piece arrives, and no thread is held after
it (notebook 02 counts the threads inside the generator). But nothing throws into or closes the
generator: it stays suspended at its `yield`, with the provider's stream open, and the provider
keeps generating (and billing). The generator is left in a reference cycle, so only the cyclic
garbage collector frees it; when it does, the generator is closed, its `finally` runs and the
stream is closed. Notebook 02 measures each case: with the collector's automatic runs switched
off, the provider sent the whole reply; a `gc.collect()` closed the stream during the
collection; with the automatic runs on, when the stream closes depends on what the process
happens to allocate meanwhile.

The fix: an `async def` generator on `AsyncOpenAI`, cancelled where it waits, or the core's
`EventStream`, as every lesson relay uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from openai import OpenAI

from lessons.relay_core import SSE_MEDIA_TYPE, STREAM_HEADERS, ChatRequest, model_name, sse_data


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.openai = OpenAI()
    yield
    app.state.openai.close()


app = FastAPI(title="PITFALL: plain def generator", lifespan=lifespan)


@app.post("/chat/stream")
def chat_stream(body: ChatRequest, request: Request) -> StreamingResponse:
    # A plain `def` route runs in the threadpool too, so the blocking create call is harmless.
    client: OpenAI = request.app.state.openai
    stream = client.chat.completions.create(
        model=model_name("openai"),
        messages=[
            {"role": "system", "content": body.system_prompt},
            {"role": "user", "content": body.message},
        ],
        max_completion_tokens=500,
        stream=True,
    )

    def events() -> Iterator[str]:
        try:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield sse_data({"token": chunk.choices[0].delta.content, "done": False})
            yield sse_data({"token": "", "done": True})
        finally:
            stream.close()  # the defect: on disconnect this runs only when the GC frees events()

    return StreamingResponse(events(), media_type=SSE_MEDIA_TYPE, headers=STREAM_HEADERS)
