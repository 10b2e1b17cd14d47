"""POST /chat/stream: a chat reply relayed from AsyncOpenAI as `{"token", "done"}` events."""

from __future__ import annotations

from fastapi import APIRouter

from lessons.relay_core import (
    ChatRequest,
    EventStream,
    OpenAIClient,
    RelayContext,
    TokenEvents,
    model_name,
    openai_chat_events,
)

router = APIRouter()


@router.post("/chat/stream", response_class=EventStream)
async def chat_stream(body: ChatRequest, relay: RelayContext, openai: OpenAIClient) -> EventStream:
    """`data: {"token": "...", "done": false}` per piece of the reply, then one terminal event:
    `{"token": "", "done": true}`, or `{"error": ..., "code": ..., "done": true}`."""
    system = relay.system_prompt(body)
    return relay.stream(
        # Not awaited here: the response awaits it, watching the client meanwhile, so a client
        # that leaves before the provider has even answered cancels the call.
        openai.chat.completions.create(
            model=model_name("openai"),
            messages=[
                {"role": "system", "content": system},
                {"role": "user", "content": body.message},
            ],
            stream=True,
            # The provider's own token count, in a last chunk: what it bills.
            stream_options={"include_usage": True},
            max_completion_tokens=relay.max_tokens(body.max_tokens),
        ),
        openai_chat_events,
        TokenEvents(),
        provider="openai",
        prompt=[system, body.message],
    )
