"""Validated request bodies shared by the relays: bounded text, readable 422s."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Bounds are part of the API: they cap what one request can cost and what the server buffers.
MAX_MESSAGE_CHARS = 32_000
MAX_SYSTEM_CHARS = 8_000


class MessageRequest(BaseModel):
    """A body with only a user message (the original lesson's /chat/stream-meta)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    message: str = Field(
        min_length=1, max_length=MAX_MESSAGE_CHARS, description="The user's message."
    )

    @field_validator("message")
    @classmethod
    def message_has_text(cls, value: str) -> str:
        # A message of spaces passes min_length but costs a provider call for nothing.
        if not value.strip():
            raise ValueError("message must contain some non-whitespace text")
        return value


class ChatRequest(MessageRequest):
    """The original lesson's body for /chat/stream: a user message and a system prompt."""

    system_prompt: str = Field(
        default="You are a helpful assistant.",
        max_length=MAX_SYSTEM_CHARS,
        description="System prompt sent before the message.",
    )
