"""POST /langchain/stream: the original lesson's LangChain route, made safe to deploy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage

from lessons.chain_streaming.chat_model import SYSTEM_PROMPT, model_lifespan
from lessons.chain_streaming.opening import OpenedStream, open_stream
from lessons.relay_core import (
    MessageRequest,
    classify_before_stream,
    classify_during_stream,
    error_response,
    new_request_id,
    sse_data,
    streaming_response,
)

router = APIRouter()


def create_app(**model_options: Any) -> FastAPI:
    """The app; `model_options` override build_chat_model's settings (e.g. a short timeout)."""
    app = FastAPI(title="LangChain streaming", lifespan=model_lifespan(**model_options))
    app.include_router(router)
    return app


@router.post("/langchain/stream")
async def langchain_stream(body: MessageRequest, request: Request) -> Response:
    """Stream the model's reply: `data: {"token": str}` events, then `data: {"done": true}`."""
    request_id = new_request_id()
    messages = [SystemMessage(content=SYSTEM_PROMPT), HumanMessage(content=body.message)]
    try:
        chunks = await open_stream(request.app.state.llm.astream(messages))
    except Exception as exc:
        return error_response(classify_before_stream(exc, request_id))
    return streaming_response(relay_chunks(chunks, request_id), request_id=request_id)


async def relay_chunks(chunks: OpenedStream[AIMessageChunk], request_id: str) -> AsyncIterator[str]:
    """The original lesson's event shapes; the done event also carries the provider's usage."""
    usage: dict[str, int] | None = None
    try:
        async for chunk in chunks:
            # .text, not .content: content can be a list of blocks for some models.
            if chunk.text:
                yield sse_data({"token": chunk.text})
            if chunk.usage_metadata:
                usage = {
                    "input_tokens": chunk.usage_metadata["input_tokens"],
                    "output_tokens": chunk.usage_metadata["output_tokens"],
                }
        done: dict[str, Any] = {"done": True}
        if usage is not None:
            done["usage"] = usage
        yield sse_data(done)
    except Exception as exc:
        error = classify_during_stream(exc, request_id)
        yield sse_data(
            {"error": error.message, "code": error.code, "request_id": request_id, "done": True}
        )
    finally:
        # Runs on completion, on error, and when the client disconnects (the generator is
        # cancelled): closing the iterator closes the provider's HTTP stream.
        await chunks.aclose()


app = create_app()
