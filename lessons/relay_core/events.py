"""What a relay streams, whatever the provider: the items a provider adapter yields to the core.

An adapter turns one provider's stream into these items, in the order they arrive on the wire;
the core (`lessons.relay_core.stream`) frames them for the client in the route's event shape,
times them, accounts their usage, and ends the response with exactly one terminal event. A
`Finish` is how an adapter says "the provider's own end marker arrived": a stream that ends
without one was cut short, and the client is told so with an error, never with `done`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Token:
    """A piece of the reply's text."""

    text: str


@dataclass(frozen=True, slots=True)
class Reasoning:
    """A piece of the model's visible reasoning (Anthropic thinking, Responses summaries)."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call: `id` and `name` on its first piece, then argument fragments."""

    index: int  # the call's position among this reply's tool calls (0, 1, ...)
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens the provider billed for the request (input) and the reply (output)."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Finish:
    """The provider's end marker arrived; `reason` in Chat Completions' words (stop, length,
    tool_calls, content_filter)."""

    reason: str


@dataclass(frozen=True, slots=True)
class CustomEvent:
    """A route's own event (for example a chain step's result), framed as `event: name`."""

    name: str
    data: Any


@dataclass(frozen=True, slots=True)
class Frame:
    """An event framed earlier (by a generation's producer), replayed to a client as it is."""

    id: str
    data: bytes


StreamItem = Token | Reasoning | ToolCallDelta | Usage | Finish | CustomEvent | Frame


@dataclass(frozen=True, slots=True)
class Batch:
    """Several items that arrived together: the core writes them to the client in one send.

    A fast adapter that parses a whole network read at once yields its items as one Batch, so a
    client that reads slowly gets what piled up in one write instead of one write per token.
    """

    items: tuple[StreamItem, ...]


# One vocabulary for `finish_reason`, whatever the provider said.
ANTHROPIC_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
