"""POST /chat/events: named events with ids (start, token, usage, done), the shape to build on."""

from __future__ import annotations

from fastapi import APIRouter

from lessons.relay_core import (
    ChatRequest,
    EventStream,
    NamedEvents,
    OpenAIClient,
    RelayContext,
    model_name,
    openai_chat_events,
)

router = APIRouter()


@router.post("/chat/events", response_class=EventStream)
async def chat_events(body: ChatRequest, relay: RelayContext, openai: OpenAIClient) -> EventStream:
    """`event: start`, `event: token` per piece, `event: usage`, then `event: done`, or `event:
    error` as the last event. Every event has an `id:` (1, 2, ...): a client that reconnects
    with `Last-Event-ID: n` has seen exactly the first n. `: ping` comments fill silences."""
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
        NamedEvents(),
        provider="openai",
        prompt=[system, body.message],
    )
