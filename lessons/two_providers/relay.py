"""POST /relay/stream: one relay for OpenAI and Anthropic, the same named events for both."""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any, Literal

from anthropic import AsyncAnthropic
from fastapi import FastAPI, Request
from fastapi.responses import Response
from openai import AsyncOpenAI
from pydantic import Field

from lessons.relay_core import (
    MAX_SYSTEM_CHARS,
    MessageRequest,
    RelayError,
    classify_before_stream,
    classify_during_stream,
    error_response,
    new_request_id,
    sse_event,
    streaming_response,
)
from lessons.two_providers.adapters import (
    AdapterError,
    Finish,
    Token,
    ToolCallDelta,
    UnifiedEvent,
    Usage,
    anthropic_events,
    openai_chat_events,
)

logger = logging.getLogger("lessons.relay")

# Caps what one reply can cost; a real product picks this per use case.
MAX_OUTPUT_TOKENS = 1024

Provider = Literal["openai", "anthropic"]


def openai_model() -> str:
    return os.environ.get("OPENAI_MODEL", "gpt-4o-mini")


def anthropic_model() -> str:
    return os.environ.get("ANTHROPIC_MODEL", "claude-haiku-4-5-20251001")


class RelayRequest(MessageRequest):
    """The body of /relay/stream: which provider, the user's message, an optional system prompt."""

    provider: Provider = Field(description="Which model provider answers.")
    system: str | None = Field(default=None, max_length=MAX_SYSTEM_CHARS)


def classify_in_stream(exc: BaseException, request_id: str) -> RelayError:
    """The relay_core classification, plus the adapters' own end-of-stream checks."""
    if isinstance(exc, AdapterError):
        logger.warning("stream failed: code=%s request_id=%s detail=%s", exc.code, request_id, exc)
        return RelayError(exc.code, request_id)
    return classify_during_stream(exc, request_id)


async def unified_sse(
    events: AsyncIterable[UnifiedEvent],
    *,
    provider: str,
    model: str,
    request_id: str,
    started: float,
    close: Callable[[], Awaitable[Any]],
) -> AsyncIterator[str]:
    """Write unified events as named SSE events: start, token*, usage, done | error.

    `started` is the route's time.perf_counter() on arrival; `close` closes the upstream stream
    and runs whatever happens, including when the client disconnects (the task is cancelled).
    """
    ids = itertools.count(1)

    def frame(name: str, payload: dict[str, Any]) -> str:
        return sse_event(name, payload, event_id=next(ids))

    ttft_ms: float | None = None
    try:
        yield frame("start", {"provider": provider, "model": model, "request_id": request_id})
        async for event in events:
            if isinstance(event, Token):
                if ttft_ms is None:
                    ttft_ms = (time.perf_counter() - started) * 1000
                yield frame("token", {"text": event.text})
            elif isinstance(event, ToolCallDelta):
                yield frame("tool_call", asdict(event))
            elif isinstance(event, Usage):
                yield frame("usage", asdict(event))
            elif isinstance(event, Finish):
                latency_ms = (time.perf_counter() - started) * 1000
                yield frame(
                    "done",
                    {
                        "finish_reason": event.reason,
                        "ttft_ms": round(ttft_ms if ttft_ms is not None else latency_ms, 1),
                        "latency_ms": round(latency_ms, 1),
                    },
                )
    except Exception as exc:  # the one terminal error event; details go to the log only
        error = classify_in_stream(exc, request_id)
        yield frame(
            "error", {"code": error.code, "message": error.message, "request_id": request_id}
        )
    finally:
        # Runs on completion, on error and on client disconnect (CancelledError): the provider
        # stops generating, and billing, as soon as nobody is listening.
        await close()


async def open_provider_stream(
    request: Request, body: RelayRequest
) -> tuple[AsyncIterable[UnifiedEvent], str, Callable[[], Awaitable[Any]]]:
    """Open the provider's stream (this raises before any byte is sent) and pick its adapter."""
    if body.provider == "openai":
        model = openai_model()
        messages: list[dict[str, str]] = []
        if body.system is not None:
            messages.append({"role": "system", "content": body.system})
        messages.append({"role": "user", "content": body.message})
        client: AsyncOpenAI = request.app.state.openai
        chunks = await client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            max_completion_tokens=MAX_OUTPUT_TOKENS,
            stream=True,
            # Without this, Chat Completions streams report no usage at all.
            stream_options={"include_usage": True},
        )
        return openai_chat_events(chunks), model, chunks.close
    model = anthropic_model()
    anthropic: AsyncAnthropic = request.app.state.anthropic
    extra = {"system": body.system} if body.system is not None else {}
    raw = await anthropic.messages.create(
        model=model,
        max_tokens=MAX_OUTPUT_TOKENS,
        messages=[{"role": "user", "content": body.message}],
        stream=True,
        **extra,  # type: ignore[arg-type]
    )
    return anthropic_events(raw), model, raw.close


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Created here, not at import: importing needs no key, and the clients live on this loop.
    app.state.openai = AsyncOpenAI()
    app.state.anthropic = AsyncAnthropic()
    try:
        yield
    finally:
        await app.state.openai.close()
        await app.state.anthropic.close()


async def relay_stream(request: Request, body: RelayRequest) -> Response:
    """Stream a reply from either provider as start, token*, usage, then done or error."""
    started = time.perf_counter()
    request_id = new_request_id()
    try:
        events, model, close = await open_provider_stream(request, body)
    except Exception as exc:
        return error_response(classify_before_stream(exc, request_id))
    return streaming_response(
        unified_sse(
            events,
            provider=body.provider,
            model=model,
            request_id=request_id,
            started=started,
            close=close,
        ),
        request_id=request_id,
    )


def add_routes(app: FastAPI) -> None:
    app.post("/relay/stream", response_class=Response)(relay_stream)


app = FastAPI(title="Unified relay: OpenAI and Anthropic", lifespan=lifespan)
add_routes(app)
