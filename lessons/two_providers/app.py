"""All of notebook 02's routes in one app: /anthropic/stream, /responses/stream, /relay/stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anthropic import AsyncAnthropic
from fastapi import FastAPI
from openai import AsyncOpenAI

from lessons.two_providers import anthropic_stream, relay, responses_stream


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One client per provider for the whole app: each keeps a connection pool to its provider.
    app.state.openai = AsyncOpenAI()
    app.state.anthropic = AsyncAnthropic()
    try:
        yield
    finally:
        await app.state.openai.close()
        await app.state.anthropic.close()


app = FastAPI(title="Streaming from OpenAI and Anthropic", lifespan=lifespan)
anthropic_stream.add_routes(app)
responses_stream.add_routes(app)
relay.add_routes(app)
