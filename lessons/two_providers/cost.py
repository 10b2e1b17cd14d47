"""The cost of a reply from its usage, at prices passed in as parameters (prices change)."""

from __future__ import annotations

from dataclasses import dataclass

from lessons.relay_core import Usage


@dataclass(frozen=True)
class Prices:
    """A model's list prices in dollars per million tokens, read from the provider's price page."""

    input_per_mtok: float
    output_per_mtok: float


def reply_cost(usage: Usage, prices: Prices) -> float:
    """Dollars billed for one reply: input and output tokens at their own rates."""
    return (
        usage.input_tokens * prices.input_per_mtok + usage.output_tokens * prices.output_per_mtok
    ) / 1_000_000
