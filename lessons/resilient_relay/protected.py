"""The hardened relay behind client auth, per-client limits, a max_tokens cap and CORS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from pydantic import Field

from lessons.relay_core import ChatRequest, classify_before_stream, error_response, new_request_id
from lessons.resilient_relay.lifecycle import (
    StreamRegistry,
    StreamTracker,
    TrackedStreamingResponse,
    UsageLedger,
)
from lessons.resilient_relay.protection import ClientLimits, ProtectionSettings, client_for
from lessons.resilient_relay.refusals import RefusalCode, refusal_response
from lessons.resilient_relay.relay import (
    RelaySettings,
    make_client,
    model_name,
    open_chat_stream,
    relay_events,
)

MAX_TOKENS_CAP = ProtectionSettings().max_tokens_cap


class CappedChatRequest(ChatRequest):
    """/chat/stream's body plus the output budget the client asks for, capped."""

    max_tokens: int = Field(
        default=500, ge=1, le=MAX_TOKENS_CAP, description="Most tokens the reply may have."
    )


def create_app(
    protection: ProtectionSettings | None = None, settings: RelaySettings | None = None
) -> FastAPI:
    protection = protection if protection is not None else ProtectionSettings.from_env()
    settings = settings or RelaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.openai = make_client(settings)
        app.state.streams = StreamRegistry()
        app.state.usage = UsageLedger()
        app.state.limits = ClientLimits(protection)
        yield
        await app.state.streams.drain(settings.drain_timeout_s)
        await app.state.openai.close()

    app = FastAPI(title="Protected relay", lifespan=lifespan)
    # Browsers only: CORS stops other sites' pages from using a visitor's browser against the
    # relay. It is no access control for scripts, which is what the bearer token is for.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(protection.allowed_origins),
        allow_methods=["POST"],
        allow_headers=["Authorization", "Content-Type"],
        expose_headers=["X-Request-ID", "Retry-After"],
    )

    @app.post("/chat/stream")
    async def chat_stream(body: CappedChatRequest, request: Request) -> Response:
        state = request.app.state
        request_id = new_request_id()
        # Every check comes before the provider call: a refused request costs nothing.
        client_id = client_for(request.headers.get("authorization"), protection.tokens)
        if client_id is None:
            return refusal_response(RefusalCode.UNAUTHORIZED, request_id)
        limits: ClientLimits = state.limits
        wait_s = limits.take_request(client_id)
        if wait_s is not None:
            return refusal_response(RefusalCode.CLIENT_RATE_LIMITED, request_id, retry_after=wait_s)
        if not limits.open_stream(client_id):
            return refusal_response(RefusalCode.TOO_MANY_STREAMS, request_id, retry_after=1)
        try:
            stream = await open_chat_stream(
                state.openai, body, settings, max_tokens=body.max_tokens
            )
        except BaseException as exc:
            limits.close_stream(client_id)
            if not isinstance(exc, Exception):
                raise
            return error_response(classify_before_stream(exc, request_id))
        tracker = StreamTracker(
            request_id=request_id,
            model=model_name(),
            prompt_texts=[body.system_prompt, body.message],
            upstream=stream,
            ledger=state.usage,
            registry=state.streams,
            client_id=client_id,
            # The slot is given back however the stream ends: done, error or disconnect.
            on_close=lambda: limits.close_stream(client_id),
        )
        return TrackedStreamingResponse(
            relay_events(stream, tracker, settings),
            request_id=request_id,
            on_close=tracker.close,
        )

    return app


app = create_app()
