"""EventSource-friendly streams: POST starts a generation, GET streams it, Last-Event-ID resumes it.

EventSource can only GET, and it reconnects by itself, sending the id of the last event it saw
in `Last-Event-ID`. A GET that started a new generation on every connection would, on each
reconnect, pay for a second reply and show the reader a different text. Here the reply is
generated once, into a buffer, by a task that is independent of any one connection; every GET
(first or reconnect) replays the buffer after the client's last id and then follows it live.

The buffer lives in this process: with several workers, route reconnects to the same one
(sticky sessions) or keep the buffer in a shared store.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletionChunk

from lessons.relay_core import (
    ChatRequest,
    classify_before_stream,
    classify_during_stream,
    error_response,
    new_request_id,
    sse_comment,
    sse_event,
    streaming_response,
    with_keepalive,
)
from lessons.sse_basics.openai_client import MAX_COMPLETION_TOKENS, openai_model

logger = logging.getLogger("lessons.resumable")

_PAGE = files("lessons.proxy_browser") / "static" / "resumable.html"

# Bounds: how many replies one process holds, how long a finished one stays resumable, and how
# long an unfinished one keeps generating (and costing) with nobody connected.
MAX_GENERATIONS = 1_000
RETAIN_FINISHED_S = 60.0
ABANDON_AFTER_S = 10.0
CANCELLED_MESSAGE = "The reply was stopped before it was complete."
# Tells EventSource how soon to reconnect after a dropped connection.
RETRY_MS = 1_000


@dataclass
class Generation:
    """One reply being generated: its events so far (event N has id N) and who is listening."""

    id: str
    request_id: str
    events: list[str] = field(default_factory=list)
    finished: bool = False
    listeners: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    task: asyncio.Task[None] | None = None

    async def append(self, event: str, payload: dict[str, object], *, last: bool = False) -> None:
        async with self.changed:
            self.events.append(sse_event(event, payload, event_id=len(self.events) + 1))
            self.finished = self.finished or last
            self.changed.notify_all()

    async def finish(self) -> None:
        async with self.changed:
            self.finished = True
            self.changed.notify_all()


async def pump(generation: Generation, stream: AsyncStream[ChatCompletionChunk]) -> None:
    """Copy the provider's stream into the buffer; exactly one terminal event ends it."""
    started = time.perf_counter()
    ttft_ms: float | None = None
    finish_reason: str | None = None
    try:
        async for chunk in stream:
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            if choice.delta.content:
                if ttft_ms is None:
                    ttft_ms = (time.perf_counter() - started) * 1000
                await generation.append("token", {"text": choice.delta.content})
            finish_reason = choice.finish_reason or finish_reason
        if finish_reason is None:
            raise ConnectionError("provider stream ended without a finish_reason")
        latency_ms = (time.perf_counter() - started) * 1000
        await generation.append(
            "done",
            {
                "finish_reason": finish_reason,
                "ttft_ms": ttft_ms or latency_ms,
                "latency_ms": latency_ms,
            },
            last=True,
        )
    except Exception as exc:
        error = classify_during_stream(exc, generation.request_id)
        await generation.append(
            "error",
            {"code": error.code, "message": error.message, "request_id": error.request_id},
            last=True,
        )
    except asyncio.CancelledError:
        # Stopped (DELETE) or abandoned: a client that reconnects still gets a terminal event.
        await generation.append(
            "error",
            {
                "code": "cancelled",
                "message": CANCELLED_MESSAGE,
                "request_id": generation.request_id,
            },
            last=True,
        )
        raise
    finally:
        # Reached on success, error and cancellation alike: the provider stops generating.
        await stream.close()
        await generation.finish()


class GenerationStore(dict[str, Generation]):
    """The replies of this process, with the abandon delay the app was created with."""

    def __init__(self, abandon_after_s: float) -> None:
        super().__init__()
        self.abandon_after_s = abandon_after_s


async def janitor(generations: GenerationStore, interval_s: float) -> None:
    """Cancel replies nobody listens to any more; forget finished ones after a while."""
    while True:
        await asyncio.sleep(interval_s)
        now = time.monotonic()
        for key, generation in list(generations.items()):
            if generation.listeners:
                continue
            idle = now - generation.idle_since
            if not generation.finished and idle > generations.abandon_after_s:
                logger.info("abandoned generation request_id=%s", generation.request_id)
                if generation.task is not None:
                    generation.task.cancel()  # pump's `finally` closes the provider stream
            elif generation.finished and idle > RETAIN_FINISHED_S:
                del generations[key]


def create_app(
    *,
    abandon_after_s: float = ABANDON_AFTER_S,
    ping_interval_s: float = 15.0,
    max_events_per_connection: int | None = None,
    retry_ms: int = RETRY_MS,
) -> FastAPI:
    """`max_events_per_connection` ends each GET after that many events, as a load balancer that
    recycles long connections would; EventSource then reconnects (used to show resuming)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = AsyncOpenAI(timeout=30.0)
        app.state.openai = client
        app.state.generations = GenerationStore(abandon_after_s)
        cleaner = asyncio.create_task(janitor(app.state.generations, min(1.0, abandon_after_s)))
        try:
            yield
        finally:
            cleaner.cancel()
            tasks = [g.task for g in app.state.generations.values() if g.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(cleaner, *tasks, return_exceptions=True)
            await client.close()

    app = FastAPI(title="Resumable streams for EventSource", lifespan=lifespan)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(
            _PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"}
        )

    @app.post("/chat/generations", status_code=201)
    async def start(body: ChatRequest, request: Request) -> Response:
        generations: GenerationStore = request.app.state.generations
        request_id = new_request_id()
        if len(generations) >= MAX_GENERATIONS:
            return JSONResponse(
                {
                    "error": {
                        "code": "busy",
                        "message": "Too many replies in progress.",
                        "request_id": request_id,
                    }
                },
                status_code=503,
                headers={"Retry-After": "5"},
            )
        client: AsyncOpenAI = request.app.state.openai
        try:
            # As in every relay: the provider's stream is open before we answer, so its
            # failures are HTTP errors here.
            stream = await client.chat.completions.create(
                model=openai_model(),
                messages=[
                    {"role": "system", "content": body.system_prompt},
                    {"role": "user", "content": body.message},
                ],
                stream=True,
                max_completion_tokens=MAX_COMPLETION_TOKENS,
            )
        except Exception as exc:
            return error_response(classify_before_stream(exc, request_id))
        # Unguessable: whoever holds the id can read the reply.
        generation = Generation(id=secrets.token_urlsafe(16), request_id=request_id)
        generation.task = asyncio.create_task(pump(generation, stream))
        generations[generation.id] = generation
        return JSONResponse(
            {
                "id": generation.id,
                "events": f"/chat/generations/{generation.id}/events",
                "request_id": request_id,
            },
            status_code=201,
            headers={"X-Request-ID": request_id},
        )

    @app.get("/chat/generations/{generation_id}/events")
    async def events(
        generation_id: str,
        request: Request,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> Response:
        generation = request.app.state.generations.get(generation_id)
        if generation is None:
            # Not an event stream: EventSource fails for good instead of retrying forever.
            raise HTTPException(404, "No such reply, or it has expired.")
        start_after = _parse_last_event_id(last_event_id, len(generation.events))
        if generation.finished and start_after >= len(generation.events):
            # 204 is how a server tells EventSource to stop reconnecting.
            return Response(status_code=204)
        stream = follow(generation, start_after, max_events_per_connection, retry_ms)
        return streaming_response(
            with_keepalive(stream, ping_interval_s, sse_comment("ping")),
            request_id=generation.request_id,
        )

    @app.delete("/chat/generations/{generation_id}", status_code=204)
    async def stop(generation_id: str, request: Request) -> Response:
        generation = request.app.state.generations.get(generation_id)
        if generation is not None and generation.task is not None:
            generation.task.cancel()  # pump's `finally` closes the provider stream
        return Response(status_code=204)

    return app


def _parse_last_event_id(value: str | None, available: int) -> int:
    """The number of events the client already has. Only ids we sent are accepted."""
    if value is None or value == "":
        return 0
    if not value.isdigit() or int(value) > available:
        raise HTTPException(400, "Last-Event-ID is not an id of this stream.")
    return int(value)


async def follow(
    generation: Generation, start_after: int, limit: int | None, retry_ms: int = RETRY_MS
) -> AsyncIterator[str]:
    """Events after `start_after`: first what is buffered, then each new one as it arrives."""
    generation.listeners += 1
    sent = 0
    try:
        yield f"retry: {retry_ms}\n\n"
        position = start_after
        while True:
            async with generation.changed:
                await generation.changed.wait_for(
                    lambda p=position: len(generation.events) > p or generation.finished
                )
                batch = generation.events[position:]
                done = generation.finished
            for event in batch:
                yield event
                position += 1
                sent += 1
                if limit is not None and sent >= limit:
                    return  # end this connection early; EventSource will resume from here
            if done and position >= len(generation.events):
                return
    finally:
        generation.listeners -= 1
        generation.idle_since = time.monotonic()


app = create_app()
