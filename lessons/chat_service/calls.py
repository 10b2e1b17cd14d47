"""The provider call behind a generation: one conversation, three APIs.

A generation request names the API (`chat.completions`, `responses`, `messages`); this module
builds that API's streaming call (not yet awaited: the core awaits it, watching the client) and
names the adapter that turns its stream into the core's items. The system prompt is always the
server's: `ConversationRequest` has no field for one.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from lessons.relay_core import (
    ConversationRequest,
    Provider,
    Relay,
    anthropic_events,
    model_name,
    openai_chat_events,
    openai_responses_events,
)
from lessons.relay_core.stream import Items

Api = Literal["chat.completions", "responses", "messages"]


class GenerationRequest(ConversationRequest):
    """A conversation (bounded in turns and characters), and the API to generate the reply with."""

    api: Api = Field(
        default="chat.completions",
        description="chat.completions or responses (OpenAI), or messages (Anthropic).",
    )


@dataclass(frozen=True)
class ProviderCall:
    """A provider call, ready to be awaited, and how to read its stream."""

    opening: Awaitable[Any]
    adapter: Any  # Callable[[Any], Items]: the stream -> the core's items
    provider: Provider
    model: str
    base_url: str
    prompt: list[str]  # the text sent, for an estimate if the provider never reports usage


def provider_call(body: GenerationRequest, relay: Relay, clients: dict[str, Any]) -> ProviderCall:
    """The streaming call for `body.api`, with the server's system prompt and output cap."""
    system = relay.settings.system_prompt
    turns = [{"role": m.role, "content": m.content} for m in body.messages]
    prompt = [system, *(m.content for m in body.messages)]
    max_tokens = relay.max_tokens(body.max_tokens)
    if body.api == "messages":
        anthropic = clients["anthropic"]
        model = model_name("anthropic")
        opening = anthropic.messages.create(
            model=model, system=system, messages=turns, max_tokens=max_tokens, stream=True
        )
        return ProviderCall(
            opening, anthropic_events, "anthropic", model, str(anthropic.base_url), prompt
        )
    openai = clients["openai"]
    model = model_name("openai")
    adapter: Any
    if body.api == "responses":
        # Instructions and input items; usage comes in the terminal response.completed event.
        opening = openai.responses.create(
            model=model, instructions=system, input=turns, max_output_tokens=max_tokens, stream=True
        )
        adapter = openai_responses_events
    else:
        opening = openai.chat.completions.create(
            model=model,
            messages=[{"role": "system", "content": system}, *turns],
            max_completion_tokens=max_tokens,
            stream=True,
            # Usage arrives in a last chunk with no choices; without it we would have to estimate.
            stream_options={"include_usage": True},
        )
        adapter = openai_chat_events
    return ProviderCall(opening, adapter, "openai", model, str(openai.base_url), prompt)


__all__ = ["Api", "GenerationRequest", "Items", "ProviderCall", "provider_call"]
