"""POST /relay/stream: one relay for OpenAI and Anthropic, the same named events for both."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import Field

from lessons.relay_core import (
    MAX_SYSTEM_CHARS,
    AnthropicClient,
    EventStream,
    MessageRequest,
    NamedEvents,
    OpenAIClient,
    RelayContext,
    anthropic_events,
    model_name,
    openai_chat_events,
)

router = APIRouter()


class RelayRequest(MessageRequest):
    """Which provider answers, the user's message, and a system prompt if the server allows."""

    provider: Literal["openai", "anthropic"] = Field(description="Which model provider answers.")
    system: str | None = Field(default=None, max_length=MAX_SYSTEM_CHARS)


@router.post("/relay/stream", response_class=EventStream)
async def relay_stream(
    body: RelayRequest, relay: RelayContext, openai: OpenAIClient, anthropic: AnthropicClient
) -> EventStream:
    """start, token* (tool_call* when the model calls tools), usage, then done or error.

    Each provider's stream goes through its adapter (`lessons/relay_core/adapters.py`), so
    everything after this point is the same code for both.
    """
    system = relay.system_prompt(body, "system")
    max_tokens = relay.max_tokens(body.max_tokens)
    user = {"role": "user", "content": body.message}
    if body.provider == "openai":
        opening = openai.chat.completions.create(
            model=model_name("openai"),
            messages=[{"role": "system", "content": system}, user],  # type: ignore[list-item]
            max_completion_tokens=max_tokens,
            stream=True,
            # Without this, Chat Completions streams report no usage at all.
            stream_options={"include_usage": True},
        )
        adapter = openai_chat_events
    else:
        opening = anthropic.messages.create(
            model=model_name("anthropic"),
            max_tokens=max_tokens,
            system=system,
            messages=[user],  # type: ignore[list-item]
            stream=True,
        )
        adapter = anthropic_events
    return relay.stream(
        opening, adapter, NamedEvents(), provider=body.provider, prompt=[system, body.message]
    )
