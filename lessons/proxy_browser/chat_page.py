"""A chat page in plain HTML and JavaScript: streams POST /chat/stream with fetch, can Stop."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse

from lessons.proxy_browser.relay import router as relay_router
from lessons.relay_core import ProtectionSettings, RelaySettings, create_relay_app

# Read per request, not at import: importing has no side effects, and edits show on reload.
_PAGE = files("lessons.proxy_browser") / "static" / "chat.html"

page_router = APIRouter()


@page_router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(_PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})


def create_app(
    settings: RelaySettings | None = None, protection: ProtectionSettings | None = None
) -> FastAPI:
    return create_relay_app(
        title="Streaming chat page",
        routers=[page_router, relay_router],
        settings=settings,
        protection=protection,
        providers=("openai",),
        public_paths=("/", "/health"),
    )


app = create_app()
