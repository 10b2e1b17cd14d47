"""All of notebook 03's routes in one app: /langchain/stream, /chain/stream and /chain/events."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from lessons.chain_streaming import chain_events, chain_stream, langchain_stream
from lessons.chain_streaming.chat_model import model_lifespan


def create_app(**model_options: Any) -> FastAPI:
    """One ChatOpenAI (built in the lifespan) shared by the three routers."""
    app = FastAPI(title="Streaming LangChain output", lifespan=model_lifespan(**model_options))
    app.include_router(langchain_stream.router)
    app.include_router(chain_stream.router)
    app.include_router(chain_events.router)
    return app


app = create_app()
