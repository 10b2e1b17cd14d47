"""POST /chain/events: a chain's astream_events v2 filtered to what a client needs, usage last."""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import count
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from langchain_core.runnables.schema import StreamEvent

from lessons.chain_streaming.chains import STATS_STEP, build_stats_chain
from lessons.chain_streaming.chat_model import model_lifespan, model_name
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

# The non-streaming steps whose end the client hears about, as `step` events.
REPORTED_STEPS = frozenset({STATS_STEP})


router = APIRouter()


def create_app(**model_options: Any) -> FastAPI:
    """The app; `model_options` override build_chat_model's settings (e.g. a short timeout)."""
    app = FastAPI(title="LangChain event streaming", lifespan=model_lifespan(**model_options))
    app.include_router(router)
    return app


@router.post("/chain/events")
async def chain_events(body: MessageRequest, request: Request) -> Response:
    """Named events: `start`, `token` {"text"}, `step` {"name", "output"} when a
    non-streaming step finishes, `usage` {"input_tokens", "output_tokens"}, then `done`
    {"finish_reason"}; or one `error` {"code", "message", "request_id"} instead."""
    request_id = new_request_id()
    events = build_stats_chain(request.app.state.llm).astream_events(
        {"message": body.message},
        version="v2",
        # Only the model's events and the reported steps' events are produced at all; the
        # prompt, the parser and the chain around them stay silent.
        include_types=["chat_model"],
        include_names=sorted(REPORTED_STEPS),
    )
    try:
        # The first events (chain and model start) come before any HTTP request; the
        # first on_chat_model_stream means the provider has answered 200.
        opened = await open_stream(events, _is_model_stream)
    except Exception as exc:
        return error_response(classify_before_stream(exc, request_id))
    return streaming_response(relay_events(opened, request_id), request_id=request_id)


def _is_model_stream(event: StreamEvent) -> bool:
    return event["event"] == "on_chat_model_stream"


async def relay_events(events: OpenedStream[StreamEvent], request_id: str) -> AsyncIterator[str]:
    ids = count(1)
    usage: dict[str, int] | None = None
    finish_reason = "unknown"
    try:
        yield sse_event(
            "start",
            {"provider": "openai", "model": model_name(), "request_id": request_id},
            event_id=next(ids),
        )
        async for event in events:
            kind, data = event["event"], event["data"]
            if kind == "on_chat_model_stream":
                text = data["chunk"].text
                if text:
                    yield sse_event("token", {"text": text}, event_id=next(ids))
            elif kind == "on_chat_model_end":
                # The model's whole message: usage and finish reason, aggregated from chunks.
                message = data["output"]
                if message.usage_metadata:
                    usage = {
                        "input_tokens": message.usage_metadata["input_tokens"],
                        "output_tokens": message.usage_metadata["output_tokens"],
                    }
                finish_reason = message.response_metadata.get("finish_reason") or finish_reason
            elif kind == "on_chain_end" and event["name"] in REPORTED_STEPS:
                step = {"name": event["name"], "output": data["output"]}
                yield sse_event("step", step, event_id=next(ids))
        if usage is not None:
            yield sse_event("usage", usage, event_id=next(ids))
        yield sse_event("done", {"finish_reason": finish_reason}, event_id=next(ids))
    except Exception as exc:
        error = classify_during_stream(exc, request_id)
        yield sse_event(
            "error",
            {"code": error.code, "message": error.message, "request_id": request_id},
            event_id=next(ids),
        )
    finally:
        # Closing astream_events cancels the task that runs the chain, and with it the
        # provider's HTTP stream (also when the client disconnects).
        await events.aclose()


app = create_app()
