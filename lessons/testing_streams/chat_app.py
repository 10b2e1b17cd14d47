"""The app under test: POST /chat/stream relayed from AsyncOpenAI on the core.

The same route as notebook 01's (lessons/sse_basics/chat_stream.py), written out again so that
this folder, with lessons/relay_core, can be copied into a project on its own.
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
    system = relay.system_prompt(body)
    return relay.stream(
        openai.chat.completions.create(
            model=model_name("openai"),
            messages=[
                {"role": "system", "content": system},
                {"role": "user", "content": body.message},
            ],
            stream=True,
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
    """A fresh app (so a test or a pitfall can wrap one without touching another)."""
    return create_relay_app(
        title="Chat stream under test",
        routers=[router],
        settings=settings,
        protection=protection,
        providers=("openai",),
    )


app = create_app()
