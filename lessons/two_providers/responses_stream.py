"""POST /responses/stream: the OpenAI Responses API, streamed as the relay's unified events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response
from openai import AsyncOpenAI

from lessons.relay_core import (
    ChatRequest,
    classify_before_stream,
    error_response,
    new_request_id,
    streaming_response,
)
from lessons.two_providers.adapters import openai_responses_events
from lessons.two_providers.relay import MAX_OUTPUT_TOKENS, openai_model, unified_sse


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.openai = AsyncOpenAI()
    try:
        yield
    finally:
        await app.state.openai.close()


async def responses_stream(request: Request, body: ChatRequest) -> Response:
    """Stream a Responses API reply as start, token*, usage, then done or error."""
    started = time.perf_counter()
    request_id = new_request_id()
    client: AsyncOpenAI = request.app.state.openai
    model = openai_model()
    try:
        # The Responses API takes the system prompt as `instructions` and reports usage in its
        # terminal `response.completed` event, with no option to ask for.
        events = await client.responses.create(
            model=model,
            instructions=body.system_prompt,
            input=body.message,
            max_output_tokens=MAX_OUTPUT_TOKENS,
            stream=True,
        )
    except Exception as exc:
        return error_response(classify_before_stream(exc, request_id))
    return streaming_response(
        unified_sse(
            openai_responses_events(events),
            provider="openai",
            model=model,
            request_id=request_id,
            started=started,
            close=events.close,
        ),
        request_id=request_id,
    )


def add_routes(app: FastAPI) -> None:
    app.post("/responses/stream", response_class=Response)(responses_stream)


app = FastAPI(title="OpenAI Responses API relay", lifespan=lifespan)
add_routes(app)
