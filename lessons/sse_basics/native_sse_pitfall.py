"""Wrong: FastAPI's native EventSourceResponse alone: no send timeout, a fixed ping, no deadlines.

It gets much right. `chat_events` opens the provider's stream in a yield dependency, which
FastAPI solves before it sends anything, so a provider failure is an HTTP error rather than a
200 (a plain 500 here: nothing maps the SDK's exceptions to the error contract); the
dependency's teardown closes the stream after the response, however it ended; framing, headers
and an OpenAPI description come for free. What it cannot do for a relay (notebook 01 measures
each against the core's EventStream): its keep-alive interval is a private constant (15 s, more
than some proxies allow a silent connection); nothing notices a client that stopped reading (the
provider's stream stays open for as long as the client's socket does); a client that leaves
while the provider has not answered is noticed only once the provider answers; nothing bounds
the provider's silences; and the loop ending is taken for the reply ending, so a stream cut
without its finish reason is reported as `done`.

`chat_events_opened_inside` shows why the stream is opened in a dependency. FastAPI 0.165 starts
the generator in a task of its own just before it sends the response, and sends the 200 without
waiting for a first event: a provider failure raised in the generator cannot change the status,
and is not turned into an event either. The client gets a 200 with an empty body, the server log
a traceback.
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


@app.post("/chat/events-opened-inside", response_class=EventSourceResponse)
async def chat_events_opened_inside(
    body: ChatRequest, request: Request
) -> AsyncIterable[ServerSentEvent]:
    stream = await request.app.state.openai.chat.completions.create(
        model=model_name("openai"),
        messages=[
            {"role": "system", "content": body.system_prompt},
            {"role": "user", "content": body.message},
        ],
        stream=True,
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            yield ServerSentEvent(event="token", data={"text": chunk.choices[0].delta.content})
    yield ServerSentEvent(event="done", data={})
