"""POST /chain/stream: a prompt | model | parser chain streamed to the client with .astream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import count
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response

from lessons.chain_streaming.chains import build_answer_chain
from lessons.chain_streaming.chat_model import model_lifespan
from lessons.chain_streaming.opening import OpenedStream, open_stream
from lessons.relay_core import (
    MessageRequest,
    classify_before_stream,
    classify_during_stream,
    error_response,
    new_request_id,
    sse_event,
    streaming_response,
)

router = APIRouter()


def create_app(**model_options: Any) -> FastAPI:
    """The app; `model_options` override build_chat_model's settings (e.g. a short timeout)."""
    app = FastAPI(title="LangChain chain streaming", lifespan=model_lifespan(**model_options))
    app.include_router(router)
    return app


@router.post("/chain/stream")
async def chain_stream(body: MessageRequest, request: Request) -> Response:
    """Stream the chain's output: `token` events with `{"text"}`, then `done` (or `error`)."""
    request_id = new_request_id()
    chain = build_answer_chain(request.app.state.llm)
    try:
        pieces = await open_stream(chain.astream({"message": body.message}))
    except Exception as exc:
        return error_response(classify_before_stream(exc, request_id))
    return streaming_response(relay_pieces(pieces, request_id), request_id=request_id)


async def relay_pieces(pieces: OpenedStream[str], request_id: str) -> AsyncIterator[str]:
    ids = count(1)
    try:
        async for piece in pieces:
            # The parser passes on the model's empty first chunk (the role) as "".
            if piece:
                yield sse_event("token", {"text": piece}, event_id=next(ids))
        yield sse_event("done", {}, event_id=next(ids))
    except Exception as exc:
        error = classify_during_stream(exc, request_id)
        yield sse_event(
            "error",
            {"code": error.code, "message": error.message, "request_id": request_id},
            event_id=next(ids),
        )
    finally:
        # Also runs when the client disconnects: closing the chain's stream closes the provider's.
        await pieces.aclose()


app = create_app()
