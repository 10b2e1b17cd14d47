"""The chat service: one app for one worker or many, generations in memory or in Redis.

`create_app()` builds it on the core (`create_relay_app(deployed=True)`: it refuses every request
until `RELAY_CLIENT_TOKENS` is set). Its lifespan picks the store: with
`CHAT_SERVICE_REDIS_URL`, generations and per-client budgets live in Redis, shared by every
worker; without it, in this process (one worker, notebooks, tests). It also starts this worker's
metrics endpoint when `CHAT_SERVICE_METRICS_PORT` is set.

Run it with the draining server: `python -m lessons.chat_service --workers 2` (see __main__.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from redis.exceptions import RedisError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lessons.chat_service.memory_store import ServiceMemoryStore
from lessons.chat_service.metrics import ServiceMetrics
from lessons.chat_service.redis_budgets import RedisBudgets
from lessons.chat_service.redis_store import RedisGenerationStore
from lessons.chat_service.routes import router
from lessons.chat_service.settings import ServiceSettings
from lessons.relay_core import (
    ErrorCode,
    ProtectionSettings,
    RelayError,
    RelaySettings,
    create_relay_app,
    error_response,
    new_request_id,
)
from lessons.relay_core.app import PRODUCER_ID
from lessons.relay_core.generations import GenerationStore

# The system prompt is the server's: a deployed service never lets a caller replace it.
DEPLOYED_SETTINGS = RelaySettings(client_system_prompt=False)
PUBLIC_PATHS = ("/", "/health", "/ready")
_PAGE = files("lessons.chat_service") / "static" / "chat.html"


def worker_name() -> str:
    """A short name for this process, the same in its logs, its metrics and `X-Served-By`
    (derived from host and pid, which it does not reveal)."""
    return hashlib.sha256(PRODUCER_ID.encode()).hexdigest()[:8]


class ServedBy:
    """Adds `X-Served-By: <worker>` to every response: which worker answered, behind a balancer."""

    def __init__(self, app: ASGIApp, *, worker: str) -> None:
        self.app = app
        self.worker = worker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_worker(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("X-Served-By", self.worker)
            await send(message)

        await self.app(scope, receive, send_with_worker)


async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Redis unreachable while answering a request: 503 in the error contract, not a traceback."""
    request_id = getattr(request.state, "request_id", None) or new_request_id()
    return error_response(RelayError(ErrorCode.SERVER_BUSY, request_id, "1"))


def create_app(
    settings: RelaySettings | None = None,
    protection: ProtectionSettings | None = None,
    *,
    service: ServiceSettings | None = None,
    store: GenerationStore | None = None,
    abandon_after_s: float | None = None,
) -> FastAPI:
    """The service. `service` defaults to the environment (`ServiceSettings.from_env()`);
    `store` replaces the store it would pick (two apps of one test sharing one store);
    `abandon_after_s` overrides the service's, as `lessons.proxy_browser.resumable` allows."""
    settings = settings or DEPLOYED_SETTINGS
    service = service or ServiceSettings.from_env()
    if abandon_after_s is not None:
        service = replace(service, abandon_after_s=abandon_after_s)
    worker = worker_name()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state
        state.service = service
        state.worker = worker
        redis_store: RedisGenerationStore | None = None
        ready: Callable[[], Awaitable[bool]] = _always_ready
        if store is not None:
            state.generations, state.store_kind = store, "shared"
        elif service.redis_url:
            redis_store = RedisGenerationStore(
                service.redis_url,
                retain_s=service.retain_s,
                # Past its longest possible life, even a generation whose worker died is gone.
                lifetime_s=settings.open_timeout_s + settings.total_timeout_s + service.retain_s,
                max_generations=service.max_generations,
                # More events than a reply can have: the output cap, plus start, usage and end.
                trim_events=settings.max_tokens_cap + 16,
                liveness_check_s=service.liveness_check_s,
                abandon_after_s=service.abandon_after_s,
                max_connections=service.redis_max_connections,
            )
            await redis_store.start()
            state.generations, state.store_kind = redis_store, "redis"
            ready = redis_store.ping
            if state.budgets is not None:
                # Budgets across workers: the same client's limits, wherever it lands.
                state.budgets = RedisBudgets(
                    redis_store.redis,
                    app.state.protection.budgets,
                    lease_ttl_s=settings.open_timeout_s + settings.total_timeout_s + 30,
                )
        else:
            state.generations = ServiceMemoryStore(
                max_generations=service.max_generations,
                retain_s=service.retain_s,
                abandon_after_s=service.abandon_after_s,
            )
            state.store_kind = "memory"
        state.store_ready = ready
        metrics = state.metrics = ServiceMetrics(worker, lambda: _open_streams(app))
        if service.metrics_port is not None:
            _serve_metrics(metrics, service)
        try:
            yield
        finally:
            # End this worker's streams while the store is still there to record their end
            # (the draining server has normally done it already; then this finds none).
            await state.streams.drain(settings.drain_timeout_s)
            metrics.shutdown()
            if redis_store is not None:
                await redis_store.close()

    app = create_relay_app(
        title="Chat service",
        routers=[router],
        settings=settings,
        protection=protection,
        deployed=True,
        lifespan=lifespan,
        public_paths=PUBLIC_PATHS,
    )
    app.add_exception_handler(RedisError, store_unavailable)
    app.add_middleware(ServedBy, worker=worker)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(
            _PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"}
        )

    return app


def _serve_metrics(metrics: ServiceMetrics, service: ServiceSettings) -> None:
    """Bind the first free port of this worker's range (the workers start at once; a port
    another worker took already fails to bind, and the next one is tried)."""
    assert service.metrics_port is not None
    for offset in range(service.metrics_ports):
        try:
            metrics.serve(service.metrics_host, service.metrics_port + offset)
            return
        except OSError:
            continue
    raise RuntimeError("no free metrics port in CHAT_SERVICE_METRICS_PORT's range")


async def _always_ready() -> bool:
    return True


def _open_streams(app: FastAPI) -> dict[str, int]:
    state = app.state
    generations = state.metrics.generations
    return {"generation": generations, "reader": max(0, len(state.streams) - generations)}


app = create_app()
