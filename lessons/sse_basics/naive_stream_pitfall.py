"""Wrong: a StreamingResponse over a generator that calls the SDK: errors become a 200, cuts `done`.

A first version, as many tutorials write it: the route returns a `StreamingResponse` at once,
and the generator inside it opens the provider's stream, relays each piece as JSON in a `data:`
line, says `done` when the SDK's loop ends, and turns any exception into a last event. Its
headers are right (`text/event-stream`, `Cache-Control: no-cache`, `X-Accel-Buffering: no`), and
against a healthy provider it streams correctly. What goes wrong (notebook 01 shows each one
against the mock providers):

- the status line is sent before the generator runs, so a provider's 429 (or 500, or a refused
  key) reaches the client as a 200, with the provider's own error text in the body (its
  organisation id included);
- the SDK's loop ending is taken for the reply ending: a stream that the provider ended without
  its finish reason is reported as `done`;
- nothing is sent while the model is slow to start, so a proxy may cut the silent connection.

What it gets right, measured in the same notebook: a client that leaves is noticed. Starlette
cancels the generator where it waits, inside the SDK's read, and the SDK's own `finally` closes
the provider's response; the mock sees the disconnect within milliseconds.

The fix is the core's `EventStream` (lessons/relay_core/stream.py), used by `chat_stream.py`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from openai import AsyncOpenAI
from pydantic import BaseModel


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.openai = AsyncOpenAI()
    yield
    await app.state.openai.close()


app = FastAPI(title="PITFALL: StreamingResponse as many tutorials write it", lifespan=lifespan)


class ChatBody(BaseModel):
    message: str
    system_prompt: str = "You are a helpful assistant."


@app.post("/chat/stream")
async def chat_stream(body: ChatBody, request: Request) -> StreamingResponse:
    client: AsyncOpenAI = request.app.state.openai

    async def generate() -> AsyncIterator[str]:
        try:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[
                    {"role": "system", "content": body.system_prompt},
                    {"role": "user", "content": body.message},
                ],
                stream=True,
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    token = chunk.choices[0].delta.content
                    yield f"data: {json.dumps({'token': token, 'done': False})}\n\n"
            yield f"data: {json.dumps({'token': '', 'done': True})}\n\n"
        except Exception as e:
            yield f"data: {json.dumps({'error': str(e), 'done': True})}\n\n"

    return StreamingResponse(
        generate(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
