"""The service's own settings: where generations live, how long they last, where metrics go.

The relay's limits (deadlines, body size, token caps) are the core's `RelaySettings`; these are
what a service of several workers adds. Every one can be set from the environment, so that the
same command runs a laptop (no variables: one process, generations in memory) and a deployment
(`CHAT_SERVICE_REDIS_URL=redis://...`: any worker resumes any generation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

ENV_PREFIX = "CHAT_SERVICE_"


@dataclass(frozen=True)
class ServiceSettings:
    """Generations, their store and the metrics endpoint."""

    # None: generations live in this process (one worker, notebooks). A URL: in Redis, shared
    # by every worker, which is what several workers need.
    redis_url: str | None = None
    # A finished generation stays resumable this long (a reload, a phone back from a tunnel).
    retain_s: float = 300.0
    # With nobody reading, a generation goes on this long (a reload reconnects within seconds),
    # then it is cancelled and accounted: a closed tab stops costing tokens.
    abandon_after_s: float = 30.0
    # The producer's lease: renewed every third of it. When its worker dies, readers elsewhere
    # learn it once the lease has run out (and at most `liveness_check_s` later).
    lease_s: float = 5.0
    liveness_check_s: float = 1.0
    # Generations kept at once (running and retained): the store answers 503 beyond it.
    max_generations: int = 10_000
    # Redis connections one worker uses for commands (readers waiting for events share one
    # more connection: see redis_tail.py). Commands wait for a free one rather than fail.
    redis_max_connections: int = 32
    # Prometheus metrics of this worker on their own port (never on the public one). None: off.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    # With several workers on one machine, worker i takes the first free port of
    # metrics_port ... metrics_port + metrics_ports - 1.
    metrics_ports: int = 1

    def __post_init__(self) -> None:
        for name in ("retain_s", "abandon_after_s", "lease_s", "liveness_check_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_generations < 1 or self.redis_max_connections < 2:
            raise ValueError("max_generations must be at least 1, redis_max_connections 2")

    @classmethod
    def from_env(cls, **overrides: Any) -> ServiceSettings:
        """Read `CHAT_SERVICE_<FIELD>` variables (for example CHAT_SERVICE_REDIS_URL)."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = os.environ.get(ENV_PREFIX + field.name.upper())
            if raw is None or raw == "":
                continue
            kind = str(field.type)
            if "int" in kind:
                values[field.name] = int(raw)
            elif "float" in kind:
                values[field.name] = float(raw)
            else:
                values[field.name] = raw
        return cls(**{**values, **overrides})
