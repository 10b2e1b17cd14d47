"""The core's fault matrix (tests/fault_matrix.py) over the service's POST /chat/generations, on
both stores. The POST streams the generation it starts, so the matrix drives it like any
streaming route; since a generation outlives its reader by design, the upstream must close
once the generation is abandoned (ABANDON_AFTER_S), not the moment the reader leaves."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from lessons.chat_service.app import create_app
from lessons.chat_service.settings import ServiceSettings
from lessons.toolkit.pytest_fixtures import require_or_skip
from lessons.toolkit.redis_server import INSTALL_HINT, redis_available, run_redis
from tests.fault_matrix import (
    ABANDON_AFTER_S,
    FAST,
    FAULTS,
    PROMPT,
    PROTECTION,
    RelayServers,
    RelaySpec,
    check_relay,
    relay_servers,
)

REDIS_URL: dict[str, str] = {}


@dataclass(frozen=True)
class ServiceSpec(RelaySpec):
    """The service on one store; `lesson=False` so that each store gets its own server."""

    store: str = "memory"

    def load(self) -> Any:
        service = ServiceSettings(
            redis_url=REDIS_URL.get("url") if self.store == "redis" else None,
            abandon_after_s=ABANDON_AFTER_S,
            liveness_check_s=0.2,
        )
        return create_app(FAST, PROTECTION, service=service)

    @property
    def leave_bound_s(self) -> float:
        return ABANDON_AFTER_S + 1.0


BODY = {"messages": [{"role": "user", "content": PROMPT}]}
SPECS = [
    ServiceSpec(
        f"nb07-service-{store}",
        "lessons.chat_service.app",
        "/chat/generations",
        BODY,
        lesson=False,
        store=store,
    )
    for store in ("memory", "redis")
]


# On Redis, every run takes the faults where the store is in the path of a failure; the others
# (which the in-process run covers the same way) run in the slow suite.
REDIS_EVERY_RUN = {
    "error_event",
    "drop",
    "client_disconnect",
    "leave_during_open",
    "budget_exceeded",
}


def params() -> list[Any]:
    found = []
    for spec in SPECS:
        for fault in FAULTS:
            slow = spec.store == "redis" and fault not in REDIS_EVERY_RUN
            marks = [pytest.mark.slow] if slow else []
            found.append(pytest.param(spec, fault, id=f"{spec.name}-{fault}", marks=marks))
    return found


@pytest.fixture(scope="module")
def servers() -> Iterator[RelayServers]:
    with run_redis() if redis_available() else _no_redis() as redis, relay_servers() as started:
        if redis is not None:
            REDIS_URL["url"] = redis.url
        yield started


class _no_redis:  # a context manager standing in for run_redis
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize(("spec", "fault"), params())
def test_the_service_survives_every_fault(spec: ServiceSpec, fault: str, servers) -> None:
    if spec.store == "redis":
        require_or_skip("url" in REDIS_URL, f"redis-server is not installed ({INSTALL_HINT})")
    check_relay(spec, fault, servers)
