"""Per-client budgets: open streams, request rate and tokens, checked before any provider call.

`Budgets` is the interface a relay uses; `MemoryBudgets` keeps the counts in this process, which
is right for one worker. Several workers or replicas would each keep their own counts, so a
service that scales out keeps them in a shared store instead (notebook 07 does it in Redis)
behind the same two calls.

`admit` checks and takes in one step, with no `await` between the check and the update, so
that requests arriving together cannot all pass a check that only one of them should.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

from lessons.relay_core.errors import ErrorCode


@dataclass(frozen=True)
class BudgetSettings:
    """What one client may use. Issue one token per client so that these are per client."""

    max_concurrent_streams: int = 4
    # A token bucket: `burst` requests at once, refilled at `requests_per_minute`.
    requests_per_minute: float = 60
    burst: int = 10
    # Tokens (input and output) per window. Each stream reserves its output cap on admission
    # and is charged what it really used when it ends.
    tokens_per_window: int = 200_000
    window_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_concurrent_streams < 1 or self.burst < 1:
            raise ValueError("max_concurrent_streams and burst must be at least 1")
        if self.requests_per_minute <= 0 or self.tokens_per_window < 1 or self.window_s <= 0:
            raise ValueError("rates, token budgets and windows must be positive")


@dataclass(frozen=True, slots=True)
class Lease:
    """One admitted request: released (and charged) when its stream ends."""

    client_id: str
    reserved_tokens: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was not admitted, and when the client may try again."""

    code: ErrorCode
    retry_after_s: int


class Budgets(Protocol):
    async def admit(self, client_id: str, *, reserve_tokens: int) -> Lease | Refusal: ...
    async def release(self, lease: Lease, *, used_tokens: int) -> None: ...


@dataclass
class _Client:
    bucket: float
    bucket_at: float
    open_streams: int = 0
    window_start: float = 0.0
    used_tokens: int = 0
    reserved_tokens: int = 0


@dataclass
class MemoryBudgets:
    """Budgets kept in this process (one worker)."""

    settings: BudgetSettings = field(default_factory=BudgetSettings)
    _clients: dict[str, _Client] = field(default_factory=dict)

    async def admit(self, client_id: str, *, reserve_tokens: int) -> Lease | Refusal:
        return self.admit_now(client_id, reserve_tokens=reserve_tokens, now=time.monotonic())

    def admit_now(self, client_id: str, *, reserve_tokens: int, now: float) -> Lease | Refusal:
        s = self.settings
        client = self._clients.get(client_id)
        if client is None:
            client = self._clients[client_id] = _Client(float(s.burst), now, window_start=now)
        if now - client.window_start >= s.window_s:
            client.window_start, client.used_tokens = now, 0
        rate = s.requests_per_minute / 60
        client.bucket = min(s.burst, client.bucket + (now - client.bucket_at) * rate)
        client.bucket_at = now
        if client.bucket < 1:
            return Refusal(ErrorCode.CLIENT_RATE_LIMITED, math.ceil((1 - client.bucket) / rate))
        if client.open_streams >= s.max_concurrent_streams:
            return Refusal(ErrorCode.TOO_MANY_STREAMS, 1)
        if client.used_tokens + client.reserved_tokens + reserve_tokens > s.tokens_per_window:
            wait = math.ceil(client.window_start + s.window_s - now)
            return Refusal(ErrorCode.TOKEN_BUDGET_EXHAUSTED, max(wait, 1))
        client.bucket -= 1
        client.open_streams += 1
        client.reserved_tokens += reserve_tokens
        return Lease(client_id, reserve_tokens)

    async def release(self, lease: Lease, *, used_tokens: int) -> None:
        client = self._clients.get(lease.client_id)
        if client is None:
            return
        client.open_streams = max(0, client.open_streams - 1)
        client.reserved_tokens = max(0, client.reserved_tokens - lease.reserved_tokens)
        client.used_tokens += used_tokens

    def open_streams(self, client_id: str) -> int:
        client = self._clients.get(client_id)
        return client.open_streams if client is not None else 0

    def used_tokens(self, client_id: str) -> int:
        client = self._clients.get(client_id)
        return client.used_tokens if client is not None else 0
