"""Notebook 05's relay: /chat/stream with every guarantee of the core.

Nothing here handles an error, a timeout, a disconnect or a shutdown: `relay.stream()` returns
the core's `EventStream`, which does (lessons/relay_core/stream.py). What an app chooses is the
limits: `create_app(settings)` takes a `RelaySettings`, whose defaults suit a chat UI behind a
proxy that cuts idle connections after 60 s; a batch job or a reasoning model wants others.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from lessons.relay_core import (
    ChatRequest,
    EventStream,
    OpenAIClient,
    ProtectionSettings,
    RelayContext,
    RelaySettings,
    TokenEvents,
    create_relay_app,
    model_name,
    openai_chat_events,
)

router = APIRouter()


@router.post("/chat/stream", response_class=EventStream)
async def chat_stream(body: ChatRequest, relay: RelayContext, openai: OpenAIClient) -> EventStream:
    """/chat/stream's events; every way out is one terminal event, or nothing for a client
    that has gone."""
    system = relay.system_prompt(body)
    return relay.stream(
        openai.chat.completions.create(
            model=model_name("openai"),
            messages=[
                {"role": "system", "content": system},
                {"role": "user", "content": body.message},
            ],
            stream=True,
            # Usage arrives in a last chunk with no choices; without it we would have to estimate.
            stream_options={"include_usage": True},
            max_completion_tokens=relay.max_tokens(body.max_tokens),
        ),
        openai_chat_events,
        TokenEvents(),
        provider="openai",
        prompt=[system, body.message],
    )


def create_app(
    settings: RelaySettings | None = None, protection: ProtectionSettings | None = None
) -> FastAPI:
    return create_relay_app(
        title="Resilient relay",
        routers=[router],
        settings=settings,
        protection=protection,
        providers=("openai",),
    )


app = create_app()
