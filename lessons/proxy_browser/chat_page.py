"""A chat page in plain HTML and JavaScript: streams POST /chat/stream with fetch, can Stop."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from lessons.proxy_browser.relay import DEFAULT_PING_INTERVAL_S, router
from lessons.sse_basics.openai_client import openai_lifespan

# Read per request, not at import: importing has no side effects, and edits show on reload.
_PAGE = files("lessons.proxy_browser") / "static" / "chat.html"


def create_app(*, ping_interval_s: float = DEFAULT_PING_INTERVAL_S) -> FastAPI:
    app = FastAPI(title="Streaming chat page", lifespan=openai_lifespan)
    app.state.ping_interval_s = ping_interval_s
    app.include_router(router)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(
            _PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"}
        )

    return app


app = create_app()
