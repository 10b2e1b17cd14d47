"""Wrong: a plain `def` generator is never told that its client left; the upstream runs on.

Starlette iterates a sync generator in its threadpool, one `next()` per thread call, so unlike
sync_client_pitfall.py this does not block the event loop, and concurrent users are served side
by side. The hidden cost is the disconnect: Starlette stops asking for the next piece, but
nothing throws into or closes the generator. The thread call in progress returns, no thread is
held afterwards, and the generator is left suspended with the provider's stream open. The mock
provider keeps generating (and the real one keeps billing) until the generator happens to be
garbage collected, which runs its `finally` at last. Notebook 02 measures both. The fix: an
`async def` generator on `AsyncOpenAI`, cancelled on disconnect, as every lesson relay does.
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
