"""One AsyncOpenAI client per app, created at startup from the SDK's own environment variables."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from openai import AsyncOpenAI

DEFAULT_MODEL = "gpt-4o-mini"
# Caps what one request can cost; the original lesson used the same budget.
MAX_COMPLETION_TOKENS = 500


def openai_model() -> str:
    return os.environ.get("OPENAI_MODEL", DEFAULT_MODEL)


@asynccontextmanager
async def openai_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Create the client on the server's own event loop (not at import: no key is needed to
    import, and a client must not outlive its loop), and close its connection pool at shutdown.

    AsyncOpenAI reads OPENAI_API_KEY and OPENAI_BASE_URL itself. The timeout applies to each
    network operation, so it bounds the wait for the response headers and for every next chunk,
    not the length of a whole reply.
    """
    client = AsyncOpenAI(timeout=30.0)
    app.state.openai = client
    try:
        yield
    finally:
        await client.close()


def get_openai(request: Request) -> AsyncOpenAI:
    """The app's client, for `Depends`: routes never build a client per request."""
    return request.app.state.openai
