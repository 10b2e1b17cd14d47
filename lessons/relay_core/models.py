"""Validated request bodies shared by the relays: bounded text, readable 422s."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Bounds are part of the API: they cap what one request can cost and what the server buffers.
MAX_MESSAGE_CHARS = 32_000
MAX_SYSTEM_CHARS = 8_000
MAX_MESSAGES = 50
MAX_CONVERSATION_CHARS = 64_000


def _has_text(value: str) -> str:
    # A message of spaces passes min_length but costs a provider call for nothing.
    if not value.strip():
        raise ValueError("must contain some non-whitespace text")
    return value


class MessageRequest(BaseModel):
    """A body with a user message and, optionally, the most tokens the reply may have."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(
        min_length=1, max_length=MAX_MESSAGE_CHARS, description="The user's message."
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="The most tokens the reply may have; the server caps it (see its settings).",
    )

    _message_has_text = field_validator("message")(_has_text)


class ChatRequest(MessageRequest):
    """/chat/stream's body: a user message and a system prompt (the first shape most tutorials
    teach; whether the server honours the system prompt is the server's setting)."""

    system_prompt: str = Field(
        default="You are a helpful assistant.",
        max_length=MAX_SYSTEM_CHARS,
        description="System prompt sent before the message, if the server allows clients one.",
    )


class ChatMessage(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)

    _content_has_text = field_validator("content")(_has_text)


class ConversationRequest(BaseModel):
    """A conversation so far, ending with the user's turn. The system prompt is the server's."""

    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(default=None, ge=1)

    @field_validator("messages")
    @classmethod
    def ends_with_user_and_is_bounded(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        if messages[-1].role != "user":
            raise ValueError("the last message must be the user's")
        if sum(len(m.content) for m in messages) > MAX_CONVERSATION_CHARS:
            raise ValueError(f"the conversation is longer than {MAX_CONVERSATION_CHARS} characters")
        return messages
