"""Notebook 01's routes in one app: `uvicorn lessons.sse_basics.app:app --port 8000`."""

from __future__ import annotations

from fastapi import FastAPI

from lessons.relay_core import ProtectionSettings, RelaySettings, create_relay_app
from lessons.sse_basics import chat_stream, native_events, stream_meta


def create_app(
    settings: RelaySettings | None = None, protection: ProtectionSettings | None = None
) -> FastAPI:
    return create_relay_app(
        title="SSE basics",
        routers=[chat_stream.router, stream_meta.router, native_events.router],
        settings=settings,
        protection=protection,
        providers=("openai",),
    )


app = create_app()
