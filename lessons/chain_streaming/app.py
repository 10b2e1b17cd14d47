"""Notebook 03's routes in one app: /langchain/stream, /chain/stream and /chain/events."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from lessons.chain_streaming import chain_events, chain_stream, langchain_stream
from lessons.chain_streaming.chat_model import model_lifespan
from lessons.relay_core import ProtectionSettings, RelaySettings, create_relay_app


def create_app(
    settings: RelaySettings | None = None,
    protection: ProtectionSettings | None = None,
    **model_options: Any,
) -> FastAPI:
    """One ChatOpenAI (built in the lifespan) shared by the three routers; `model_options`
    override its settings (a short timeout, no retries, ...)."""
    return create_relay_app(
        title="Streaming LangChain output",
        routers=[langchain_stream.router, chain_stream.router, chain_events.router],
        settings=settings,
        protection=protection,
        # LangChain brings its own OpenAI client: the core creates none.
        providers=(),
        lifespan=model_lifespan(settings, **model_options),
    )


app = create_app()
