"""Wrong: on a mid-stream provider error the relay just stops, sending no terminal event.

A first version as tutorials write it: the error is logged on the server and the stream simply
ends. The client cannot tell "the model finished" from "the model failed". It also awaits the
provider in the route, where nothing watches the client: a client that leaves before the
provider has answered is noticed only once it has.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import StreamingResponse
from openai import AsyncOpenAI

from lessons.relay_core import SSE_MEDIA_TYPE, STREAM_HEADERS, ChatRequest, model_name, sse_data

logger = logging.getLogger("lessons.relay")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.openai = AsyncOpenAI()
    yield
    await app.state.openai.close()


router = APIRouter()


@router.post("/chat/stream")
async def chat_stream(body: ChatRequest, request: Request) -> StreamingResponse:
    stream = await request.app.state.openai.chat.completions.create(
        model=model_name("openai"),
        messages=[{"role": "user", "content": body.message}],
        stream=True,
    )

    async def events() -> AsyncIterator[str]:
        try:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield sse_data({"token": chunk.choices[0].delta.content, "done": False})
            yield sse_data({"token": "", "done": True})
        except Exception:
            # The bug: logged on the server, invisible to the client.
            logger.exception("stream failed")
        finally:
            await stream.close()

    return StreamingResponse(events(), media_type=SSE_MEDIA_TYPE, headers=STREAM_HEADERS)


def create_app() -> FastAPI:
    """A fresh app (each server of it gets its own client)."""
    app = FastAPI(title="PITFALL: a failure with no terminal event", lifespan=lifespan)
    app.include_router(router)
    return app


app = create_app()
