"""Per-client budgets in Redis: the same rules as the in-process budgets, holding across workers,
atomic under concurrency, and not leaked by a worker that dies holding leases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis

from lessons.chat_service.redis_budgets import RedisBudgets
from lessons.relay_core import BudgetSettings, Lease, MemoryBudgets, Refusal
from lessons.toolkit.pytest_fixtures import require_or_skip
from lessons.toolkit.redis_server import INSTALL_HINT, RedisServer, redis_available, run_redis

_clients = iter(range(10_000))


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer | None]:
    if not redis_available():
        yield None
        return
    with run_redis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer | None) -> str:
    require_or_skip(redis_server is not None, f"redis-server is not installed ({INSTALL_HINT})")
    assert redis_server is not None
    return redis_server.url


@asynccontextmanager
async def redis_budgets(
    url: str, settings: BudgetSettings, *, workers: int = 1, lease_ttl_s: float = 60
) -> AsyncIterator[list[RedisBudgets]]:
    """One RedisBudgets per worker, each with its own connection, on one Redis."""
    clients = [aioredis.Redis.from_url(url) for _ in range(workers)]
    try:
        yield [RedisBudgets(c, settings, lease_ttl_s=lease_ttl_s) for c in clients]
    finally:
        for client in clients:
            await client.aclose()


@pytest.fixture(params=["memory", "redis"])
def budgets_factory(request: pytest.FixtureRequest, redis_server: RedisServer | None) -> Callable:
    if request.param == "redis":
        require_or_skip(redis_server is not None, f"redis-server is not installed ({INSTALL_HINT})")

    @asynccontextmanager
    async def make(settings: BudgetSettings) -> AsyncIterator[Any]:
        if request.param == "memory":
            yield MemoryBudgets(settings)
            return
        assert redis_server is not None
        async with redis_budgets(redis_server.url, settings) as (budgets,):
            yield budgets

    return make


def client() -> str:
    return f"client-{next(_clients)}"


def test_open_streams_are_capped_and_come_back_on_release(budgets_factory) -> None:
    async def scenario() -> tuple[list[Any], Any, Any]:
        async with budgets_factory(BudgetSettings(max_concurrent_streams=2)) as budgets:
            who = client()
            held = [await budgets.admit(who, reserve_tokens=10) for _ in range(3)]
            assert isinstance(held[0], Lease)
            await budgets.release(held[0], used_tokens=5)
            again = await budgets.admit(who, reserve_tokens=10)
            other = await budgets.admit(client(), reserve_tokens=10)
            return held, again, other

    held, again, other = asyncio.run(scenario())
    assert isinstance(held[2], Refusal) and held[2].code == "too_many_streams"
    assert isinstance(again, Lease), "a released stream frees its place"
    assert isinstance(other, Lease), "budgets are per client"


def test_request_rate_and_token_budget_refuse_with_a_retry_after(budgets_factory) -> None:
    settings = BudgetSettings(
        max_concurrent_streams=100, requests_per_minute=6, burst=2, tokens_per_window=100
    )

    async def scenario() -> tuple[Any, Any]:
        async with budgets_factory(settings) as budgets:
            who = client()
            for _ in range(2):
                lease = await budgets.admit(who, reserve_tokens=10)
                await budgets.release(lease, used_tokens=10)
            rated = await budgets.admit(who, reserve_tokens=10)
            poor = client()
            lease = await budgets.admit(poor, reserve_tokens=50)
            await budgets.release(lease, used_tokens=90)
            return rated, await budgets.admit(poor, reserve_tokens=50)

    rated, spent = asyncio.run(scenario())
    assert isinstance(rated, Refusal) and rated.code == "client_rate_limited"
    assert 1 <= rated.retry_after_s <= 10, "one request every 10 s at 6 per minute"
    assert isinstance(spent, Refusal) and spent.code == "token_budget_exhausted"
    assert spent.retry_after_s >= 1


def test_limits_hold_across_workers_and_admission_is_atomic(redis_url: str) -> None:
    """Two workers, 20 requests of one client at once: exactly max_concurrent_streams pass."""

    async def scenario() -> tuple[int, int]:
        settings = BudgetSettings(max_concurrent_streams=4, requests_per_minute=6000, burst=100)
        async with redis_budgets(redis_url, settings, workers=2) as (first, second):
            who = client()
            results = await asyncio.gather(
                *((first if n % 2 else second).admit(who, reserve_tokens=1) for n in range(20))
            )
            leases = [r for r in results if isinstance(r, Lease)]
            # Released on one worker, admitted on the other.
            await first.release(leases[0], used_tokens=1)
            again = await second.admit(who, reserve_tokens=1)
            return len(leases), isinstance(again, Lease)

    admitted, again = asyncio.run(scenario())
    assert admitted == 4, f"{admitted} streams admitted over two workers, the limit is 4"
    assert again


def test_a_dead_workers_leases_expire_with_their_reservations(redis_url: str) -> None:
    async def scenario() -> tuple[Any, Any, int]:
        settings = BudgetSettings(max_concurrent_streams=1, tokens_per_window=100)
        async with redis_budgets(redis_url, settings, lease_ttl_s=0.2) as (budgets,):
            who = client()
            await budgets.admit(who, reserve_tokens=90)  # its worker dies: never released
            blocked = await budgets.admit(who, reserve_tokens=90)
            await asyncio.sleep(0.3)
            after = await budgets.admit(who, reserve_tokens=90)
            return blocked, after, await budgets.open_streams(who)

    blocked, after, open_streams = asyncio.run(scenario())
    assert isinstance(blocked, Refusal) and blocked.code == "too_many_streams"
    assert isinstance(after, Lease), "the lease of a dead worker expired, reservation included"
    assert open_streams == 1
