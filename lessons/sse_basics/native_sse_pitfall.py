"""Wrong: FastAPI's native EventSourceResponse alone: no send timeout, a fixed ping, no deadlines.

It gets much right. The provider's stream is opened in a yield dependency, before the response,
so a provider failure is still an HTTP error; the dependency's teardown closes the stream after
the response, however it ended; framing, headers and OpenAPI docs come for free. What it cannot
do for a relay: its keep-alive interval is a private constant (15 s, more than some proxies
allow a silent connection); nothing notices a client that stopped reading (the upstream stays
open, and billed, for as long as the socket does); nothing bounds the provider's silences; and a
client that leaves while the provider has not answered yet is not noticed until it answers.
Notebook 01 compares it with the core's EventStream; notebook 09 measures both.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from openai import AsyncOpenAI

from lessons.relay_core import ChatRequest, model_name


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.openai = AsyncOpenAI()
    yield
    await app.state.openai.close()


app = FastAPI(title="PITFALL: native EventSourceResponse alone", lifespan=lifespan)


async def open_stream(body: ChatRequest, request: Request) -> AsyncIterator[Any]:
    """Opened before the response; closed by the teardown, after it."""
    stream = await request.app.state.openai.chat.completions.create(
        model=model_name("openai"),
        messages=[
            {"role": "system", "content": body.system_prompt},
            {"role": "user", "content": body.message},
        ],
        stream=True,
    )
    try:
        yield stream
    finally:
        await stream.close()


@app.post("/chat/events", response_class=EventSourceResponse)
async def chat_events(
    stream: Annotated[Any, Depends(open_stream)],
) -> AsyncIterable[ServerSentEvent]:
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            yield ServerSentEvent(event="token", data={"text": chunk.choices[0].delta.content})
    yield ServerSentEvent(event="done", data={})
