"""The service's routes: start a generation and stream it, resume it from any worker, stop it.

- `POST /chat/generations` starts a generation owned by the authenticated client and streams it
  at once (its events carry the store's ids). The answer names the generation
  (`X-Generation-ID`) and sets a grant cookie for its URLs, so that a browser page can resume it
  with `EventSource`, which cannot send a bearer token.
- `GET /chat/generations/{id}/stream` replays the events after `Last-Event-ID` (all of them
  without it), then follows live: from any worker, whichever one is generating.
- `DELETE /chat/generations/{id}` stops it, wherever it runs: the stop request is written to the
  store, and the producer (which checks the store four times a second) ends the generation
  with a terminal `stopped` event and closes the provider's stream.
- `GET /ready` says whether this worker can take traffic (its store answers, it is not draining),
  for the load balancer; `/health` (the core's) only says the process is up.

Another client's generation answers exactly as a missing one, 404: its existence is not told.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse

from lessons.chat_service.calls import GenerationRequest, provider_call
from lessons.chat_service.settings import ServiceSettings
from lessons.relay_core import (
    ErrorCode,
    EventStream,
    ReaderContext,
    Refused,
    Relay,
    RelayContext,
    RelayError,
    error_response,
)
from lessons.relay_core.generations import GenerationStore, replay

# How soon EventSource reconnects after a dropped connection (sent as `retry:` first).
RETRY_MS = 1_000

router = APIRouter()


def store_of(request: Request) -> GenerationStore:
    return request.app.state.generations


def service_of(request: Request) -> ServiceSettings:
    return request.app.state.service


def generation_path(generation_id: str) -> str:
    return f"/chat/generations/{generation_id}"


@router.post("/chat/generations", response_class=EventStream)
async def start_generation(
    body: GenerationRequest, request: Request, relay: RelayContext
) -> EventStream:
    """Start a reply to the conversation and stream it; resumable with the ids it carries."""
    service = service_of(request)
    state = request.app.state
    call = provider_call(body, relay, state.clients)
    meta = await relay.generate(
        store_of(request),
        call.opening,
        state.metrics.metered(
            call.adapter,
            provider=call.provider,
            model=call.model,
            base_url=call.base_url,
            started=relay.arrived,
        ),
        provider=call.provider,
        model=call.model,
        prompt=call.prompt,
        abandon_after_s=service.abandon_after_s,
        lease_s=service.lease_s,
    )
    response = _reader(request, relay, meta.id, None)
    response.headers["X-Generation-ID"] = meta.id
    path = generation_path(meta.id)
    response.headers.append("Set-Cookie", relay.grant(path, service.retain_s))
    return response


async def _owned(request: Request, reader: Relay, generation_id: str) -> None:
    meta = await store_of(request).get(generation_id)
    # Another client's generation answers exactly as a missing one: its existence is not told.
    if meta is None or meta.owner != reader.client_id:
        raise Refused(RelayError(ErrorCode.NOT_FOUND, reader.request_id))


def _reader(request: Request, relay: Relay, generation_id: str, after: str | None) -> EventStream:
    return replay(
        store_of(request),
        generation_id,
        after,
        request_id=relay.request_id,
        settings=relay.settings,
        retain_s=service_of(request).retain_s,
        registry=request.app.state.streams,
        retry_ms=RETRY_MS,
    )


@router.get("/chat/generations/{generation_id}/stream", response_class=EventStream)
async def resume_generation(
    generation_id: str,
    request: Request,
    reader: ReaderContext,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> Response:
    """The events after `Last-Event-ID` (all of them without it), then live, from any worker."""
    await _owned(request, reader, generation_id)
    store = store_of(request)
    try:
        # Malformed, or well formed but not an entry of this generation (another one's, or one
        # made up): either way an id this stream never sent, and the store says so.
        after = store.parse_position(last_event_id)
        page = await store.read(generation_id, after, wait_s=0)
    except ValueError:
        raise Refused(RelayError(ErrorCode.INVALID_LAST_EVENT_ID, reader.request_id)) from None
    if page.finished and not page.entries:
        # Nothing more will ever come: 204 is how a server tells EventSource to stop retrying.
        return Response(status_code=204)
    return _reader(request, reader, generation_id, after)


@router.delete("/chat/generations/{generation_id}", status_code=204)
async def stop_generation(generation_id: str, request: Request, reader: ReaderContext) -> Response:
    """Stop generating, on whichever worker the producer runs."""
    await _owned(request, reader, generation_id)
    await store_of(request).request_stop(generation_id)
    return Response(status_code=204)


@router.get("/ready", include_in_schema=False)
async def ready(request: Request) -> Response:
    """200 while this worker can serve; 503 while it drains or cannot reach its store."""
    state = request.app.state
    request_id = request.state.request_id
    if state.streams.draining:
        return error_response(RelayError(ErrorCode.SHUTTING_DOWN, request_id, "1"))
    if not await state.store_ready():
        return error_response(RelayError(ErrorCode.SERVER_BUSY, request_id, "1"))
    return JSONResponse({"status": "ready", "worker": state.worker, "store": state.store_kind})
