"""Wrong: .astream on a chain ending in a non-streaming step sends nothing until the very end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import count
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response

from lessons.chain_streaming.chains import build_stats_chain
from lessons.chain_streaming.chat_model import model_lifespan
from lessons.chain_streaming.opening import open_stream
from lessons.relay_core import (
    MessageRequest,
    classify_before_stream,
    error_response,
    new_request_id,
    sse_event,
    streaming_response,
)

router = APIRouter()


def create_app(**model_options: Any) -> FastAPI:
    app = FastAPI(title="Buffered chain (pitfall)", lifespan=model_lifespan(**model_options))
    app.include_router(router)
    return app


@router.post("/chain/buffered")
async def chain_buffered(body: MessageRequest, request: Request) -> Response:
    request_id = new_request_id()
    chain = build_stats_chain(request.app.state.llm)
    try:
        # The bug: .astream yields the *last* step's output. answer_stats is a plain function,
        # so it waits for the whole answer, and the client gets one event at the end: the
        # stats, and never the answer's tokens.
        outputs = await open_stream(chain.astream({"message": body.message}))
    except Exception as exc:
        return error_response(classify_before_stream(exc, request_id))

    async def relay() -> AsyncIterator[str]:
        ids = count(1)
        try:
            async for output in outputs:
                yield sse_event("output", output, event_id=next(ids))
            yield sse_event("done", {}, event_id=next(ids))
        finally:
            await outputs.aclose()

    return streaming_response(relay(), request_id=request_id)


app = create_app()
