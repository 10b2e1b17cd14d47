"""The hardened relay: deadlines, keep-alives, retries before the first token, cleanup, drain."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import openai
from fastapi import FastAPI, Request
from fastapi.responses import Response
from openai.types.chat import ChatCompletionChunk

from lessons.relay_core import (
    ChatRequest,
    classify_before_stream,
    classify_during_stream,
    error_response,
    new_request_id,
    sse_comment,
    sse_data,
)
from lessons.resilient_relay.lifecycle import (
    StreamRegistry,
    StreamTracker,
    TrackedStreamingResponse,
    UsageLedger,
)
from lessons.resilient_relay.refusals import REFUSAL_MESSAGES, RefusalCode, refusal_response
from lessons.resilient_relay.timeouts import KEEPALIVE, Draining, paced


@dataclass(frozen=True)
class RelaySettings:
    """Every limit in one place. The defaults suit a chat UI behind a proxy with a 60 s idle cut."""

    # Opening the stream (response headers), SDK retries and their back-off included.
    open_timeout_s: float = 15.0
    # From the provider's 200 to the first token: long prompts and reasoning models are slow here.
    first_token_timeout_s: float = 30.0
    # The longest silence between two tokens once text flows.
    idle_timeout_s: float = 15.0
    # A `: ping` this often while waiting for the first token, well under proxies' idle cut-offs.
    keepalive_interval_s: float = 5.0
    # SDK retries happen inside the call that opens the stream, before the first token only.
    max_retries: int = 2
    max_tokens: int = 500
    # How long shutdown waits for streams to send their terminal event.
    drain_timeout_s: float = 5.0


class IncompleteStream(ConnectionError):
    """The provider's stream ended without a finish reason: the connection was cut."""


def model_name() -> str:
    return os.environ.get("OPENAI_MODEL", "gpt-4o-mini")


def make_client(settings: RelaySettings) -> openai.AsyncOpenAI:
    # The SDK's read timeout also bounds each read mid-stream; keep it above our own deadlines so
    # that ours decide, and our open timeout bounds the whole of the SDK's retrying.
    read_s = max(settings.first_token_timeout_s, settings.idle_timeout_s) + 5
    return openai.AsyncOpenAI(
        max_retries=settings.max_retries,
        timeout=openai.Timeout(read_s, connect=5.0),
    )


async def open_chat_stream(
    client: openai.AsyncOpenAI,
    body: ChatRequest,
    settings: RelaySettings,
    *,
    max_tokens: int,
) -> openai.AsyncStream[ChatCompletionChunk]:
    """Returns once the provider has answered 200, so any failure here is still an HTTP error."""
    async with asyncio.timeout(settings.open_timeout_s):
        return await client.chat.completions.create(
            model=model_name(),
            messages=[
                {"role": "system", "content": body.system_prompt},
                {"role": "user", "content": body.message},
            ],
            stream=True,
            max_tokens=max_tokens,
            # Usage arrives in a last chunk with no choices; without it we would have to estimate.
            stream_options={"include_usage": True},
        )


def has_text(chunk: ChatCompletionChunk) -> bool:
    return bool(chunk.choices and chunk.choices[0].delta.content)


def error_event(code: str, message: str, request_id: str) -> str:
    """The one terminal error event, in /chat/stream's shape."""
    return sse_data({"error": message, "code": code, "request_id": request_id, "done": True})


async def relay_events(
    stream: openai.AsyncStream[ChatCompletionChunk],
    tracker: StreamTracker,
    settings: RelaySettings,
) -> AsyncIterator[str]:
    """Provider chunks in, SSE out; every way out is one terminal event, or a cancel."""
    try:
        async for item in paced(
            stream,
            first_token_s=settings.first_token_timeout_s,
            idle_s=settings.idle_timeout_s,
            keepalive_s=settings.keepalive_interval_s,
            stop=tracker.stop,
            is_token=has_text,
        ):
            if item is KEEPALIVE:
                yield sse_comment("ping")
                continue
            chunk: ChatCompletionChunk = item  # type: ignore[assignment]
            if chunk.usage is not None:
                tracker.provider_usage = (
                    chunk.usage.prompt_tokens,
                    chunk.usage.completion_tokens,
                )
            if not chunk.choices:  # the usage chunk
                continue
            choice = chunk.choices[0]
            if choice.delta.content:
                tracker.streamed(choice.delta.content)
                yield sse_data({"token": choice.delta.content, "done": False})
            if choice.finish_reason is not None:
                tracker.finish_reason = choice.finish_reason
        if tracker.finish_reason is None:
            raise IncompleteStream("the provider stream ended without a finish reason")
        tracker.outcome = "completed"
        yield sse_data({"token": "", "done": True})
    except Draining:
        tracker.outcome = "shutdown"
        code = RefusalCode.SHUTTING_DOWN
        yield error_event(code, REFUSAL_MESSAGES[code], tracker.request_id)
    except Exception as exc:
        # Only the fixed message and code leave the server; the exception goes to the log.
        tracker.outcome = "error"
        error = classify_during_stream(exc, tracker.request_id)
        yield error_event(error.code, error.message, tracker.request_id)
    finally:
        await tracker.close()


def create_app(settings: RelaySettings | None = None) -> FastAPI:
    settings = settings or RelaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.openai = make_client(settings)
        app.state.streams = StreamRegistry()
        app.state.usage = UsageLedger()
        yield
        # Normally reached after uvicorn has waited for the streams (see drain.py for why);
        # drain whatever is left, then close the SDK's connection pool.
        await app.state.streams.drain(settings.drain_timeout_s)
        await app.state.openai.close()

    app = FastAPI(title="Resilient relay", lifespan=lifespan)

    @app.get("/health")
    async def health(request: Request) -> dict[str, int | str]:
        return {"status": "ok", "streams": len(request.app.state.streams)}

    @app.post("/chat/stream")
    async def chat_stream(body: ChatRequest, request: Request) -> Response:
        state = request.app.state
        request_id = new_request_id()
        if state.streams.draining:
            return refusal_response(RefusalCode.SHUTTING_DOWN, request_id, retry_after=1)
        try:
            stream = await open_chat_stream(
                state.openai, body, settings, max_tokens=settings.max_tokens
            )
        except Exception as exc:
            return error_response(classify_before_stream(exc, request_id))
        tracker = StreamTracker(
            request_id=request_id,
            model=model_name(),
            prompt_texts=[body.system_prompt, body.message],
            upstream=stream,
            ledger=state.usage,
            registry=state.streams,
        )
        return TrackedStreamingResponse(
            relay_events(stream, tracker, settings),
            request_id=request_id,
            on_close=tracker.close,
        )

    return app


app = create_app()
