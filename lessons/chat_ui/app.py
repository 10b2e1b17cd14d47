"""The chat product's app: `/api/chat` (resumable), `/api/agent` (LangGraph), and the React page.

The page is built from `frontend/` (React, `useChat` from `@ai-sdk/react`, esbuild) into
`frontend/dist/`, which is committed: a learner without Node opens it as it is, and a test under
CI rebuilds it from the lockfile and compares the bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, Response

from lessons.chat_ui.agent import agent_lifespan
from lessons.chat_ui.agent import router as agent_router
from lessons.chat_ui.chats import MemoryChatStore
from lessons.chat_ui.routes import ABANDON_AFTER_S, RETAIN_S
from lessons.chat_ui.routes import router as chat_router
from lessons.chat_ui.tools import Toolbox
from lessons.chat_ui.turn import TurnLimits
from lessons.relay_core import ProtectionSettings, RelaySettings, create_relay_app
from lessons.relay_core.generations import MemoryGenerationStore

DIST = files("lessons.chat_ui") / "frontend" / "dist"
# The page's files, and only these, by name (read per request: edits show on reload).
ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}

page_router = APIRouter()


@page_router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    html = (DIST / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


@page_router.get("/assets/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    if name not in ASSETS:
        return Response(status_code=404)
    body = (DIST / name).read_bytes()
    return Response(body, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})


def create_app(
    settings: RelaySettings | None = None,
    protection: ProtectionSettings | None = None,
    *,
    abandon_after_s: float = ABANDON_AFTER_S,
    retain_s: float = RETAIN_S,
    limits: TurnLimits | None = None,
    toolbox: Toolbox | None = None,
) -> FastAPI:
    """The app; `abandon_after_s` and `retain_s` bound a reply nobody reads, and how long a
    finished one stays replayable; `limits` bound a turn's steps and its tools' time."""
    settings = settings or RelaySettings()
    model_lifespan = agent_lifespan(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.generations = MemoryGenerationStore(retain_s=retain_s)
        app.state.retain_s = retain_s
        app.state.chats = MemoryChatStore()
        app.state.toolbox = toolbox or Toolbox()
        app.state.limits = limits or TurnLimits()
        app.state.abandon_after_s = abandon_after_s
        async with model_lifespan(app):
            yield

    return create_relay_app(
        title="A chat product's stream (AI SDK UI message stream)",
        routers=[page_router, chat_router, agent_router],
        settings=settings,
        protection=protection,
        lifespan=lifespan,
        public_paths=("/", "/health", *(f"/assets/{name}" for name in ASSETS)),
    )


app = create_app()
