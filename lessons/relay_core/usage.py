"""What each stream cost: the provider's own count, or an estimate when it never arrived."""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from lessons.relay_core.logs import log_event

# A rough, provider-neutral estimate for text the provider never counted for us: about four
# characters per token for English, plus a few framing tokens per message.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def estimate_input_tokens(texts: Sequence[str]) -> int:
    return sum(math.ceil(len(t) / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE for t in texts)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One stream's cost and how it ended."""

    request_id: str
    client_id: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    estimated: bool  # True when the provider's own count never arrived (a cut stream)
    outcome: str
    duration_ms: float

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class UsageLedger:
    """The last streams' usage, in memory. In production, write these to your billing store."""

    records: deque[UsageRecord] = field(default_factory=lambda: deque(maxlen=10_000))

    def add(self, record: UsageRecord) -> None:
        self.records.append(record)
        log_event(
            logging.INFO,
            "usage",
            request_id=record.request_id,
            client=record.client_id,
            provider=record.provider,
            model=record.model,
            input_tokens=record.input_tokens,
            output_tokens=record.output_tokens,
            estimated=record.estimated,
            outcome=record.outcome,
        )

    def find(self, request_id: str) -> UsageRecord | None:
        return next((r for r in reversed(self.records) if r.request_id == request_id), None)
