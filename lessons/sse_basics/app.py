"""Notebook 01's routes in one app: `uvicorn lessons.sse_basics.app:app --port 8000`."""

from __future__ import annotations

from fastapi import FastAPI

from lessons.relay_core import RelaySettings, create_relay_app
from lessons.sse_basics import chat_stream, native_events, stream_meta


def create_app(settings: RelaySettings | None = None) -> FastAPI:
    return create_relay_app(
        title="SSE basics",
        routers=[chat_stream.router, stream_meta.router, native_events.router],
        settings=settings,
        providers=("openai",),
    )


app = create_app()
