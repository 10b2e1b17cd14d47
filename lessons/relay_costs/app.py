"""Notebook 09's app: the fast-path relay, `uvicorn lessons.relay_costs.app:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from lessons.relay_core import ProtectionSettings, RelaySettings, create_relay_app
from lessons.relay_core.fastpath import ChatCompletionsClient
from lessons.relay_costs import fast


def create_app(
    settings: RelaySettings | None = None, protection: ProtectionSettings | None = None
) -> FastAPI:
    settings = settings or RelaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Created on the server's loop, like the SDK clients; no SDK client is needed here.
        app.state.fast_openai = ChatCompletionsClient(settings)
        try:
            yield
        finally:
            await app.state.fast_openai.aclose()

    return create_relay_app(
        title="Fast-path relay",
        routers=[fast.router],
        settings=settings,
        protection=protection,
        providers=(),
        lifespan=lifespan,
    )


app = create_app()
