"""All of notebook 01's routes in one app: `uvicorn lessons.sse_basics.app:app --port 8000`."""

from __future__ import annotations

from fastapi import FastAPI

from lessons.relay_core import StreamNotStarted, stream_not_started_handler
from lessons.sse_basics import chat_stream, native_events, stream_meta
from lessons.sse_basics.openai_client import openai_lifespan


def create_app() -> FastAPI:
    app = FastAPI(title="SSE basics", lifespan=openai_lifespan)
    app.add_exception_handler(StreamNotStarted, stream_not_started_handler)
    app.include_router(chat_stream.router)
    app.include_router(stream_meta.router)
    app.include_router(native_events.make_router())
    return app


app = create_app()
