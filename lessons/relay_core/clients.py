"""Provider clients: one per app, created in its lifespan, handed to routes by a dependency.

Clients are created when the server starts, not at import: importing needs no key, and a
client's connection pool belongs to the event loop it was created on. Base URLs and keys come
only from the SDKs' own environment variables (`OPENAI_BASE_URL`, `OPENAI_API_KEY`,
`ANTHROPIC_BASE_URL`, `ANTHROPIC_API_KEY`), the models from `OPENAI_MODEL` and `ANTHROPIC_MODEL`.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

import anthropic
import openai
from fastapi import Depends, Request

from lessons.relay_core.settings import RelaySettings

Provider = Literal["openai", "anthropic"]
PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic")

DEFAULT_MODELS: dict[Provider, str] = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-haiku-4-5-20251001",
}


def model_name(provider: Provider) -> str:
    """The model a relay asks for: `OPENAI_MODEL` / `ANTHROPIC_MODEL`, or the default."""
    return os.environ.get(f"{provider.upper()}_MODEL", DEFAULT_MODELS[provider])


def sdk_timeout(settings: RelaySettings) -> float:
    # The SDK's read timeout bounds each network read. Keep it above the relay's own deadlines,
    # so that those decide (with the error the client is promised) and the SDK's never fires.
    return max(settings.first_token_timeout_s, settings.idle_timeout_s, settings.open_timeout_s) + 5


def make_client(
    provider: Provider, settings: RelaySettings
) -> openai.AsyncOpenAI | anthropic.AsyncAnthropic:
    """An async client for `provider`. Its retries (two, the SDK default) happen while the stream
    is being opened, before the first byte to our client, inside the relay's open deadline."""
    timeout = sdk_timeout(settings)
    sdk = openai if provider == "openai" else anthropic
    options: dict[str, Any] = {"timeout": sdk.Timeout(timeout, connect=5.0)}
    if settings.http_client == "aiohttp":
        # The SDK's own aiohttp transport, with the SDK's pool limits (1,000 connections, 100 kept
        # alive), which one worker's streams stay far below.
        options["http_client"] = sdk.DefaultAioHttpClient(timeout=options["timeout"])
    client = openai.AsyncOpenAI if provider == "openai" else anthropic.AsyncAnthropic
    return client(**options)


# async, though they await nothing: FastAPI runs a plain `def` dependency in its thread pool,
# which would cost every request a thread hop and one of the pool's 40 threads.
async def get_openai(request: Request) -> openai.AsyncOpenAI:
    return request.app.state.clients["openai"]


async def get_anthropic(request: Request) -> anthropic.AsyncAnthropic:
    return request.app.state.clients["anthropic"]


OpenAIClient = Annotated[openai.AsyncOpenAI, Depends(get_openai)]
AnthropicClient = Annotated[anthropic.AsyncAnthropic, Depends(get_anthropic)]
