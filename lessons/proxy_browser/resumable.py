"""EventSource-friendly streams: POST starts a generation, GET streams it, Last-Event-ID resumes.

EventSource can only GET, and it reconnects by itself, sending the id of the last event it saw
in `Last-Event-ID`. A GET that started a new generation on every connection would, on each
reconnect, pay for a second reply and show the reader a different text. Here the reply is
generated once, into a store, by a producer that belongs to no connection; every GET (the first
or a reconnect) replays the events after the client's last id, then follows live.

The store is the core's `MemoryGenerationStore`, in this process: with several workers, a
reconnect must reach the same one (sticky sessions), or the store must be shared (notebook 07
keeps it in Redis). Each generation belongs to the client that started it: the POST answers with
a grant cookie (HttpOnly, for this generation's URLs only) that the page's GETs carry, since
EventSource cannot send an Authorization header.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, FastAPI, Header, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from lessons.relay_core import (
    ChatRequest,
    ErrorCode,
    OpenAIClient,
    ProtectionSettings,
    ReaderContext,
    Refused,
    RelayContext,
    RelayError,
    RelaySettings,
    create_relay_app,
    model_name,
    openai_chat_events,
)
from lessons.relay_core.generations import MemoryGenerationStore, replay

_PAGE = files("lessons.proxy_browser") / "static" / "resumable.html"

# How long a finished reply stays resumable, and how long an unfinished one keeps generating
# (and costing) with nobody connected.
RETAIN_S = 300.0
ABANDON_AFTER_S = 10.0
# Tells EventSource how soon to reconnect after a dropped connection.
RETRY_MS = 1_000

router = APIRouter()


def store_of(request: Request) -> MemoryGenerationStore:
    return request.app.state.generations


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(_PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})


@router.post("/chat/generations", status_code=201)
async def start(
    body: ChatRequest, request: Request, relay: RelayContext, openai: OpenAIClient
) -> JSONResponse:
    """Start a reply; answer with its id and where to read it, once the provider has answered."""
    system = relay.system_prompt(body)
    meta = await relay.generate(
        store_of(request),
        openai.chat.completions.create(
            model=model_name("openai"),
            messages=[
                {"role": "system", "content": system},
                {"role": "user", "content": body.message},
            ],
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=relay.max_tokens(body.max_tokens),
        ),
        openai_chat_events,
        provider="openai",
        prompt=[system, body.message],
        abandon_after_s=request.app.state.abandon_after_s,
    )
    path = f"/chat/generations/{meta.id}"
    return JSONResponse(
        {"id": meta.id, "events": f"{path}/events", "request_id": relay.request_id},
        status_code=201,
        headers={"Set-Cookie": relay.grant(path, RETAIN_S)},
    )


async def _owned(request: Request, reader: ReaderContext, generation_id: str) -> None:
    meta = await store_of(request).get(generation_id)
    # Another client's generation answers exactly as a missing one: its existence is not told.
    if meta is None or meta.owner != reader.client_id:
        raise Refused(RelayError(ErrorCode.NOT_FOUND, reader.request_id))


@router.get("/chat/generations/{generation_id}/events")
async def events(
    generation_id: str,
    request: Request,
    reader: ReaderContext,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """The reply's events after `Last-Event-ID` (all of them without it), then live."""
    await _owned(request, reader, generation_id)
    store = store_of(request)
    try:
        # Malformed ("abc"), or well formed but past the end ("999" of a 50-event reply): both
        # are ids this stream never sent, and the store says so with ValueError.
        after = store.parse_position(last_event_id)
        page = await store.read(generation_id, after, wait_s=0)
    except ValueError:
        raise Refused(RelayError(ErrorCode.INVALID_LAST_EVENT_ID, reader.request_id)) from None
    if page.finished and not page.entries:
        # Nothing more will ever come: 204 is how a server tells EventSource to stop retrying.
        return Response(status_code=204)
    return replay(
        store,
        generation_id,
        after,
        request_id=reader.request_id,
        settings=reader.settings,
        retain_s=RETAIN_S,
        registry=request.app.state.streams,
        retry_ms=RETRY_MS,
    )


@router.delete("/chat/generations/{generation_id}", status_code=204)
async def stop(generation_id: str, request: Request, reader: ReaderContext) -> Response:
    """Stop generating: closing an EventSource is not enough, the reply belongs to no connection."""
    await _owned(request, reader, generation_id)
    await store_of(request).request_stop(generation_id)
    return Response(status_code=204)


def create_app(
    settings: RelaySettings | None = None,
    protection: ProtectionSettings | None = None,
    *,
    abandon_after_s: float = ABANDON_AFTER_S,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.generations = MemoryGenerationStore(retain_s=RETAIN_S)
        app.state.abandon_after_s = abandon_after_s
        yield

    return create_relay_app(
        title="Resumable streams for EventSource",
        routers=[router],
        settings=settings,
        protection=protection,
        providers=("openai",),
        lifespan=lifespan,
        public_paths=("/", "/health"),
    )


app = create_app()
