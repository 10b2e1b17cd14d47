"""Wrong: keep-alives raced against each read in a task of its own: a task per token.

A common way to send `: ping` while the provider is silent without cancelling the read: await the
next item in a task, and wait for that task with a timeout; when the timeout fires, send a ping and
keep waiting for the same task. It is correct, and the workbook's relays were written this way once,
but it creates a task, a future and a timer for every token, which on a busy server costs more per
token than the relay's own work. The core's watchdog (lessons/relay_core/watchdog.py) does the same
job with one task per stream. Notebook 09 measures the difference.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from openai import AsyncOpenAI

from lessons.relay_core import (
    SSE_MEDIA_TYPE,
    STREAM_HEADERS,
    ChatRequest,
    RelaySettings,
    model_name,
    openai_chat_events,
)
from lessons.relay_core.events import Token
from lessons.relay_core.wire import comment, encode_json

PING = comment("ping")
KEEPALIVE_S = 5.0
SYSTEM_PROMPT = RelaySettings().system_prompt
MAX_TOKENS = RelaySettings().default_max_tokens


async def with_pings(items: AsyncIterator[Any], interval_s: float) -> AsyncIterator[Any]:
    pending = asyncio.ensure_future(anext(items))  # WRONG: one task per item, for the ping
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=interval_s)
            if not done:
                yield PING
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            yield item
            pending = asyncio.ensure_future(anext(items))
    finally:
        pending.cancel()
        with contextlib.suppress(BaseException):
            await pending


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.openai = AsyncOpenAI()
    yield
    await app.state.openai.close()


app = FastAPI(title="PITFALL: a task per token", lifespan=lifespan)


@app.post("/chat/stream")
async def chat_stream(body: ChatRequest, request: Request) -> StreamingResponse:
    # The request the core's relays send (so that the benchmark compares relays, not requests).
    stream = await request.app.state.openai.chat.completions.create(
        model=model_name("openai"),
        messages=[
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": body.message},
        ],
        stream=True,
        stream_options={"include_usage": True},
        max_completion_tokens=MAX_TOKENS,
    )

    async def events() -> AsyncIterator[bytes]:
        try:
            async for item in with_pings(openai_chat_events(stream), KEEPALIVE_S):
                if item is PING:
                    yield PING
                elif isinstance(item, Token):
                    yield b'data: {"token":' + encode_json(item.text) + b',"done":false}\n\n'
            yield b'data: {"token":"","done":true}\n\n'
        finally:
            await stream.close()

    return StreamingResponse(events(), media_type=SSE_MEDIA_TYPE, headers=STREAM_HEADERS)
