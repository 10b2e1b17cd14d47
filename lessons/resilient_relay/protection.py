"""Guards for a relay that spends a paid key: client auth, per-client limits, origins."""

from __future__ import annotations

import hmac
import math
import os
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProtectionSettings:
    """Who may call the relay and how much. Empty `tokens` refuses everyone (fail closed)."""

    # Bearer token -> client id. Issue one token per client so limits and usage are per client.
    tokens: dict[str, str] = field(default_factory=dict)
    max_concurrent_streams: int = 2
    # Token bucket: `burst` requests at once, refilled at `requests_per_minute`.
    requests_per_minute: float = 30
    burst: int = 5
    # The most output a client may ask for in one request (stated in the request model).
    max_tokens_cap: int = 1_000
    allowed_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> ProtectionSettings:
        """RELAY_CLIENT_TOKENS="token1:client-a,token2:client-b", RELAY_ALLOWED_ORIGINS="https://x"."""
        pairs = [p for p in os.environ.get("RELAY_CLIENT_TOKENS", "").split(",") if ":" in p]
        origins = os.environ.get("RELAY_ALLOWED_ORIGINS", "")
        return cls(
            tokens={
                token.strip(): client.strip() for token, client in (p.split(":", 1) for p in pairs)
            },
            allowed_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
        )


def client_for(authorization: str | None, tokens: dict[str, str]) -> str | None:
    """The client id for an `Authorization: Bearer <token>` header, or None."""
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return None
    found = None
    # Compare against every token in constant time, so timing reveals nothing about a near miss.
    for token, client_id in tokens.items():
        if hmac.compare_digest(token.encode(), presented.strip().encode()):
            found = client_id
    return found


@dataclass
class _Bucket:
    tokens: float
    updated: float


class ClientLimits:
    """Per-client request rate (a token bucket) and number of open streams, in one process.

    Several workers or replicas each keep their own counts: put these in Redis or the gateway
    when you scale out.
    """

    def __init__(self, settings: ProtectionSettings) -> None:
        self.settings = settings
        self._buckets: dict[str, _Bucket] = {}
        self._open: dict[str, int] = {}

    def take_request(self, client_id: str) -> int | None:
        """Spend one request; None if allowed, else the seconds to wait (for Retry-After)."""
        now = time.monotonic()
        rate = self.settings.requests_per_minute / 60
        bucket = self._buckets.setdefault(client_id, _Bucket(self.settings.burst, now))
        bucket.tokens = min(self.settings.burst, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return max(1, math.ceil((1 - bucket.tokens) / rate))

    def open_stream(self, client_id: str) -> bool:
        if self._open.get(client_id, 0) >= self.settings.max_concurrent_streams:
            return False
        self._open[client_id] = self._open.get(client_id, 0) + 1
        return True

    def close_stream(self, client_id: str) -> None:
        left = self._open.get(client_id, 0) - 1
        if left > 0:
            self._open[client_id] = left
        else:
            self._open.pop(client_id, None)

    def open_streams(self, client_id: str) -> int:
        return self._open.get(client_id, 0)
