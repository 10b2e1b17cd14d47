"""POST /chat/stream-meta: start, token and done events, with real usage and time to first token."""

from __future__ import annotations

from fastapi import APIRouter

from lessons.relay_core import (
    EventStream,
    MessageRequest,
    MetaEvents,
    OpenAIClient,
    RelayContext,
    model_name,
    openai_chat_events,
)

router = APIRouter()


@router.post("/chat/stream-meta", response_class=EventStream)
async def chat_stream_meta(
    body: MessageRequest, relay: RelayContext, openai: OpenAIClient
) -> EventStream:
    """`{"event": "start", "model"}`, `{"event": "token", "token"}` per piece, then
    `{"event": "done", "tokens", "latency_ms", "ttft_ms"}` or `{"event": "error", ...}`.

    `tokens` is the provider's own count of the reply (what it bills), not a count of the
    pieces; both times are measured from the request's arrival, the provider's queue included.
    """
    return relay.stream(
        openai.chat.completions.create(
            model=model_name("openai"),
            messages=[{"role": "user", "content": body.message}],
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=relay.max_tokens(body.max_tokens),
        ),
        openai_chat_events,
        MetaEvents(),
        provider="openai",
        prompt=[body.message],
    )
