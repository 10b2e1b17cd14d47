"""POST /anthropic/stream: Claude's reply, relayed from AsyncAnthropic as `{"token", "done"}`."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from lessons.relay_core import (
    MAX_SYSTEM_CHARS,
    AnthropicClient,
    EventStream,
    MessageRequest,
    RelayContext,
    TokenEvents,
    anthropic_events,
    model_name,
)

router = APIRouter()


class AnthropicRequest(MessageRequest):
    """A user message (bounded, non-blank) and a system prompt, if the server allows one."""

    system: str = Field(default="You are a helpful assistant.", max_length=MAX_SYSTEM_CHARS)


@router.post("/anthropic/stream", response_class=EventStream)
async def anthropic_stream(
    body: AnthropicRequest, relay: RelayContext, anthropic: AnthropicClient
) -> EventStream:
    """The same events as /chat/stream, from Anthropic's Messages API."""
    system = relay.system_prompt(body, "system")
    return relay.stream(
        # The raw event stream (`stream=True`), which the adapter reads; the `messages.stream()`
        # helper yields the same raw events plus derived ones the adapter skips.
        anthropic.messages.create(
            model=model_name("anthropic"),
            max_tokens=relay.max_tokens(body.max_tokens),
            system=system,
            messages=[{"role": "user", "content": body.message}],
            stream=True,
        ),
        anthropic_events,
        TokenEvents(),
        provider="anthropic",
        prompt=[system, body.message],
    )
