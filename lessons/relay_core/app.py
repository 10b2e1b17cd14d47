"""The house style of a lesson app: one factory wires the core, routes only say what they teach.

`create_relay_app` builds a FastAPI app with the core's lifespan (provider clients, the stream
registry, the usage ledger, budgets), its middleware (`RelayGuard`, CORS for named origins),
its error handlers (a 422 that echoes nothing; the error contract for refusals) and `/health`.
A route asks for `relay: RelayContext` and returns `relay.stream(...)`:

    @router.post("/chat/stream", response_class=EventStream)
    async def chat_stream(body: ChatRequest, relay: RelayContext, openai: OpenAIClient):
        return relay.stream(openai.chat.completions.create(...), openai_chat_events, TokenEvents())
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from lessons.relay_core.budgets import Budgets, Lease, MemoryBudgets, Refusal
from lessons.relay_core.clients import PROVIDERS, Provider, make_client, model_name
from lessons.relay_core.errors import (
    ErrorCode,
    RelayError,
    classify_before_stream,
    error_response,
    new_request_id,
)
from lessons.relay_core.events import Batch, StreamItem
from lessons.relay_core.generations import GenerationMeta, GenerationStore, Producer, ready
from lessons.relay_core.grants import GrantSigner, grant_cookie
from lessons.relay_core.logs import log_event
from lessons.relay_core.protection import (
    BodyTooLarge,
    ProtectionSettings,
    RelayGuard,
    body_too_large_handler,
    log_protection_mode,
    validation_error_handler,
)
from lessons.relay_core.server import StreamRegistry
from lessons.relay_core.settings import RelaySettings
from lessons.relay_core.shapes import EventShape
from lessons.relay_core.stream import EventStream, close_upstream
from lessons.relay_core.usage import UsageLedger, UsageRecord, estimate_input_tokens

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

# Who produces a generation: this process (the lease in a shared store names it).
PRODUCER_ID = f"{socket.gethostname()}:{os.getpid()}"


class Refused(Exception):
    """A request the relay refuses before any provider call (answered by `refused_handler`)."""

    def __init__(self, error: RelayError) -> None:
        super().__init__(error.code)
        self.error = error


async def refused_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)
    return error_response(exc.error)


def invalid(field: str, message: str, kind: str = "value_error") -> RequestValidationError:
    """A 422 for a rule only the server can check (a cap from its settings, say)."""
    return RequestValidationError([{"type": kind, "loc": ("body", field), "msg": message}])


class Relay:
    """One request's view of the relay: its id, its client, its limits; it builds the stream."""

    def __init__(self, request: Request, client_id: str, lease: Lease | None) -> None:
        state = request.app.state
        self._request = request
        self.request_id: str = request.state.request_id
        self.client_id = client_id
        self.settings: RelaySettings = state.settings
        self.arrived: float = getattr(request.state, "arrived", time.monotonic())
        self.lease = lease
        self.used_tokens = 0
        self._registry: StreamRegistry = state.streams
        self._ledger: UsageLedger = state.usage
        self._budgets: Budgets | None = state.budgets
        self._grants: GrantSigner = state.grants

    def max_tokens(self, requested: int | None) -> int:
        """The output cap for this reply: the client's, if within the server's cap (read now,
        from the settings, not fixed when the request model was imported)."""
        cap = self.settings.max_tokens_cap
        if requested is None:
            return self.settings.default_max_tokens
        if requested > cap:
            raise invalid("max_tokens", f"must be at most {cap} on this server", "less_than_equal")
        return requested

    def system_prompt(self, body: BaseModel, field: str = "system_prompt") -> str:
        """The system prompt to send: the client's only where the server allows it."""
        if field in body.model_fields_set:
            if not self.settings.client_system_prompt:
                raise invalid(field, "this server sets the system prompt; leave this field out")
            return str(getattr(body, field))
        return self.settings.system_prompt

    def _accounting(
        self, provider: str, model: str, prompt: Sequence[str], lease: Lease | None = None
    ) -> Callable[[EventStream], Awaitable[None]]:
        """What runs when a stream ends, however it ended: its usage recorded (the provider's
        count, or an estimate when it never arrived) and, for a generation that outlived its
        request, the budget it held released and charged."""

        async def on_end(stream: EventStream) -> None:
            usage = stream.summary.usage
            record = UsageRecord(
                request_id=self.request_id,
                client_id=self.client_id,
                provider=provider,
                model=model,
                input_tokens=usage.input_tokens if usage else estimate_input_tokens(prompt),
                output_tokens=usage.output_tokens if usage else stream.summary.tokens,
                estimated=usage is None,
                outcome=stream.outcome,
                duration_ms=stream.summary.latency_ms(),
            )
            self.used_tokens = record.total_tokens
            self._ledger.add(record)
            if lease is not None and self._budgets is not None:
                await self._budgets.release(lease, used_tokens=record.total_tokens)

        return on_end

    def stream(
        self,
        opening: Awaitable[Any],
        events: Callable[[Any], AsyncIterator[StreamItem | Batch]],
        shape: EventShape,
        *,
        provider: Provider,
        prompt: Sequence[str] = (),
        model: str | None = None,
    ) -> EventStream:
        """The response for this request: `opening` (not yet awaited) opens the provider's
        stream, `events` adapts it, `shape` frames it. `prompt` is the text sent, for an
        estimate of the input tokens if the provider's own count never arrives."""
        model = model or model_name(provider)
        return EventStream(
            opening,
            events,
            shape,
            request_id=self.request_id,
            settings=self.settings,
            provider=provider,
            model=model,
            started=self.arrived,
            registry=self._registry,
            on_end=self._accounting(provider, model, prompt),
        )

    async def generate(
        self,
        store: GenerationStore,
        opening: Awaitable[Any],
        events: Callable[[Any], AsyncIterator[StreamItem | Batch]],
        *,
        provider: Provider,
        prompt: Sequence[str] = (),
        model: str | None = None,
        abandon_after_s: float = 30.0,
        lease_s: float = 5.0,
        shape: EventShape | None = None,
        generation_id: str | None = None,
    ) -> GenerationMeta:
        """Start a generation that outlives this request: open the provider's stream now (a
        failure is still an HTTP error), register it in `store`, hand it to a producer.

        The generation belongs to this client, and holds this request's budget until it ends.
        `shape` frames what is stored (NamedEvents without ids by default); `generation_id`
        names it (a random, unguessable id by default).
        """
        model = model or model_name(provider)
        upstream = await self._open_watching_the_client(opening)
        meta = GenerationMeta(
            # Unguessable, and checked against its owner too.
            id=generation_id or secrets.token_urlsafe(16),
            owner=self.client_id,
            request_id=self.request_id,
            provider=provider,
            model=model,
        )
        if not await store.create(meta):
            await close_upstream(upstream)
            raise Refused(RelayError(ErrorCode.SERVER_BUSY, self.request_id, "5"))
        await store.claim(meta.id, PRODUCER_ID, lease_s)
        lease, self.lease = self.lease, None  # the producer releases it, not this request
        producer = Producer(
            store,
            meta,
            ready(upstream),
            events,
            settings=self.settings,
            registry=self._registry,
            on_end=self._accounting(provider, model, prompt, lease),
            abandon_after_s=abandon_after_s,
            producer_id=PRODUCER_ID,
            lease_s=lease_s,
            shape=shape,
        )
        self._registry.spawn(producer.run())
        return meta

    async def _open_watching_the_client(self, opening: Awaitable[Any]) -> Any:
        """Await the provider's answer, within the open deadline, while watching the client:
        a client that leaves meanwhile cancels the call, as EventStream does for a stream."""
        work = asyncio.ensure_future(opening)
        gone = asyncio.ensure_future(self._client_left())
        try:
            await asyncio.wait(
                {work, gone},
                timeout=self.settings.open_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            gone.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            if gone.done() and not gone.cancelled():
                log_event(logging.INFO, "client_left_before_answer", request_id=self.request_id)
                raise Refused(RelayError(ErrorCode.STOPPED, self.request_id))
            raise Refused(RelayError(ErrorCode.PROVIDER_TIMEOUT, self.request_id))
        try:
            return work.result()
        except Exception as exc:
            raise Refused(classify_before_stream(exc, self.request_id)) from exc

    async def _client_left(self) -> None:
        # The body has been read: the server's next message is the client's disconnect.
        while (await self._request.receive())["type"] != "http.disconnect":
            pass

    def grant(self, path: str, ttl_s: float) -> str:
        """A `Set-Cookie` value letting this client's browser GET URLs under `path`."""
        return grant_cookie(self._grants, self.client_id, path, ttl_s)


async def get_relay(request: Request) -> AsyncIterator[Relay]:
    """The relay dependency: refuses while draining or over budget; releases the budget after
    the response, however it ended (a yield dependency's teardown runs after the stream)."""
    state = request.app.state
    request_id = getattr(request.state, "request_id", None) or new_request_id()
    if state.streams.draining:
        raise Refused(RelayError(ErrorCode.SHUTTING_DOWN, request_id, "1"))
    client_id: str = getattr(request.state, "client_id", "anonymous")
    budgets: Budgets | None = state.budgets
    lease: Lease | None = None
    if budgets is not None:
        admitted = await budgets.admit(client_id, reserve_tokens=state.settings.max_tokens_cap)
        if isinstance(admitted, Refusal):
            raise Refused(RelayError(admitted.code, request_id, str(admitted.retry_after_s)))
        lease = admitted
    relay = Relay(request, client_id, lease)
    try:
        yield relay
    finally:
        # relay.lease, not lease: a generation takes the lease over and releases it itself.
        if budgets is not None and relay.lease is not None:
            await budgets.release(relay.lease, used_tokens=relay.used_tokens)


RelayContext = Annotated[Relay, Depends(get_relay)]


async def get_reader(request: Request) -> Relay:
    """For routes that read what was already paid for (resuming a generation): the client and
    its request id, no budget taken."""
    return Relay(request, getattr(request.state, "client_id", "anonymous"), None)


ReaderContext = Annotated[Relay, Depends(get_reader)]


def create_relay_app(
    *,
    title: str,
    routers: Sequence[APIRouter],
    settings: RelaySettings | None = None,
    protection: ProtectionSettings | None = None,
    deployed: bool = False,
    providers: Sequence[Provider] = PROVIDERS,
    lifespan: Lifespan | None = None,
    public_paths: Collection[str] = ("/health",),
) -> FastAPI:
    """A lesson app on the core. `deployed=True` for apps meant to face the internet: without
    client tokens they refuse every request. `lifespan` adds the app's own resources."""
    settings = settings or RelaySettings()
    protection = protection or ProtectionSettings.from_env(deployed=deployed)
    grants = GrantSigner.from_env()

    @asynccontextmanager
    async def core_lifespan(app: FastAPI) -> AsyncIterator[None]:
        log_protection_mode(protection, title)
        state = app.state
        state.clients = {provider: make_client(provider, settings) for provider in providers}
        state.streams = StreamRegistry()
        state.usage = UsageLedger()
        state.budgets = MemoryBudgets(protection.budgets) if protection.budgets_on else None
        try:
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield
        finally:
            # Normally uvicorn has already waited for the streams (see server.py for why that
            # is too late to tell them anything); end whatever is left, then close the pools.
            await state.streams.drain(settings.drain_timeout_s)
            for client in state.clients.values():
                await client.close()

    app = FastAPI(title=title, lifespan=core_lifespan)
    app.state.settings = settings
    app.state.protection = protection
    app.state.grants = grants
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(BodyTooLarge, body_too_large_handler)
    app.add_exception_handler(Refused, refused_handler)
    app.add_middleware(
        RelayGuard,
        protection=protection,
        max_body_bytes=settings.max_body_bytes,
        public_paths=public_paths,
        grants=grants,
    )
    if protection.allowed_origins:
        # Added last, so it runs first: a browser's preflight is answered before any token check.
        # CORS only stops other sites' pages from using a visitor's browser against the relay;
        # the bearer token is the access control.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(protection.allowed_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            # A page on another origin reads these; X-Generation-ID names a generation to resume.
            expose_headers=["X-Request-ID", "Retry-After", "X-Generation-ID"],
        )

    @app.get("/health", include_in_schema=False)
    async def health(request: Request) -> dict[str, int | str]:
        return {"status": "ok", "streams": len(request.app.state.streams)}

    for router in routers:
        app.include_router(router)
    return app
