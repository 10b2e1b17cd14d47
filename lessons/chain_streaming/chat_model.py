"""The ChatOpenAI a lesson app streams from: configured from the SDK's environment, one per loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

import openai
from fastapi import Depends, FastAPI, Request
from langchain_openai import ChatOpenAI

from lessons.relay_core import RelaySettings, model_name
from lessons.relay_core.clients import sdk_timeout

SYSTEM_PROMPT = "You are a helpful assistant."


def build_chat_model(settings: RelaySettings | None = None, **overrides: Any) -> ChatOpenAI:
    """A ChatOpenAI for the event loop that calls this (call it in the app's lifespan).

    The base URL and key come from OPENAI_BASE_URL and OPENAI_API_KEY, read by the openai SDK.
    """
    settings = settings or RelaySettings()
    options: dict[str, Any] = {
        "model": model_name("openai"),
        # With a custom base URL (a gateway, a proxy, the mock), langchain-openai stops asking
        # for usage in streams; without this, usage_metadata is None on every chunk.
        "stream_usage": True,
        # The openai SDK's own default, written out: retries happen only while opening the
        # stream (before our first byte), never mid-stream.
        "max_retries": 2,
        "max_tokens": settings.default_max_tokens,
        # Above the relay's own deadlines, so that those decide (see relay_core.clients).
        "timeout": sdk_timeout(settings),
        # Our own HTTP client: langchain-openai otherwise shares one cached AsyncClient across
        # every ChatOpenAI in the process, whose connections belong to the first event loop
        # that used them and break on any other loop.
        "http_async_client": openai.DefaultAsyncHttpxClient(),
        # Socket options only shape the HTTP clients langchain-openai builds itself (here just
        # the unused sync one); turning them off keeps it from warning about proxy settings.
        "http_socket_options": (),
    }
    options.update(overrides)
    return ChatOpenAI(**options)


async def close_chat_model(llm: ChatOpenAI) -> None:
    """Close the model's async HTTP client (the one build_chat_model gave it)."""
    await llm.root_async_client.close()


def model_lifespan(
    settings: RelaySettings | None = None, **model_options: Any
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan that builds the app's ChatOpenAI (app.state.llm) on start and closes it on stop.

    Built there, not at import: importing needs no key, and the model's HTTP client belongs to
    the server's own event loop. `model_options` override build_chat_model's settings.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.llm = build_chat_model(settings, **model_options)
        try:
            yield
        finally:
            await close_chat_model(app.state.llm)

    return lifespan


async def get_chat_model(request: Request) -> ChatOpenAI:
    return request.app.state.llm


ChatModel = Annotated[ChatOpenAI, Depends(get_chat_model)]
