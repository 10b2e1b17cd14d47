"""The watchdog on its own: which deadline applies when, keep-alives, and how it ends a loop."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import anyio
import pytest

from lessons.relay_core.watchdog import FINISHING, FIRST_TOKEN, STREAMING, Watchdog
from tests.core_harness import FAST

START = 1_000.0


def dog(**changes: float) -> Watchdog:
    return Watchdog(replace(FAST, **changes) if changes else FAST, START)


def test_each_phase_has_its_own_deadline() -> None:
    watchdog = dog()
    assert watchdog.next_due() == (START + FAST.open_timeout_s, "open_deadline")
    watchdog.opened(START + 0.5)
    assert watchdog.phase == FIRST_TOKEN
    assert watchdog.next_due() == (START + 0.5 + FAST.first_token_timeout_s, "first_token_deadline")
    watchdog.phase, watchdog.waiting_since = STREAMING, START + 0.9
    assert watchdog.next_due() == (START + 0.9 + FAST.idle_timeout_s, "idle_deadline")


def test_the_total_deadline_caps_every_other() -> None:
    watchdog = dog(total_timeout_s=1.0)
    watchdog.opened(START + 0.9)
    assert watchdog.next_due() == (START + 1.0, "total_deadline")


def test_a_write_in_progress_suspends_the_providers_deadlines() -> None:
    watchdog = dog()
    watchdog.opened(START)
    watchdog.phase, watchdog.waiting_since = STREAMING, START
    watchdog.writing_since = START + 0.05
    assert watchdog.next_due() == (START + 0.05 + FAST.send_timeout_s, "reader_stalled")


def test_keepalives_are_due_only_after_the_headers_and_before_the_end() -> None:
    watchdog = dog(first_token_timeout_s=3)
    watchdog.opened(START)
    assert watchdog.next_due()[1] == "first_token_deadline"  # nothing sent yet: no ping
    watchdog.last_write_at = START + 0.2
    assert watchdog.next_due() == (START + 0.2 + FAST.keepalive_interval_s, "keepalive")
    watchdog.phase = FINISHING
    assert watchdog.next_due()[1] == "total_deadline"


def test_the_first_reason_wins_and_cancels_the_guarded_scope() -> None:
    async def scenario() -> tuple[bool, str | None]:
        watchdog = dog()
        with anyio.CancelScope() as scope:
            watchdog.guard(scope)
            watchdog.trip("client_disconnected")
            watchdog.trip("shutdown")
            await anyio.sleep(1)
        return scope.cancelled_caught, watchdog.tripped

    assert asyncio.run(scenario()) == (True, "client_disconnected")


def test_a_trip_before_the_loop_starts_cancels_it_at_once() -> None:
    async def scenario() -> bool:
        watchdog = dog()
        watchdog.trip("shutdown")
        with anyio.CancelScope() as scope:
            watchdog.guard(scope)
            await anyio.sleep(1)
        return scope.cancelled_caught

    assert asyncio.run(scenario())


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"type": "http.disconnect"}, "client_disconnected"),
        ({"type": "relay.stop", "reason": "stopped"}, "stopped"),
    ],
)
def test_run_ends_on_what_the_client_says(message: dict[str, str], reason: str) -> None:
    async def scenario() -> tuple[str | None, float]:
        watchdog = Watchdog(FAST, time.monotonic())

        async def receive() -> dict[str, str]:
            await asyncio.sleep(0.05)
            return message

        async def keepalive() -> None:
            raise AssertionError("no keep-alive before the headers")

        started = time.monotonic()
        await watchdog.run(receive, keepalive)
        return watchdog.tripped, time.monotonic() - started

    tripped, elapsed = asyncio.run(scenario())
    assert tripped == reason and elapsed < 0.5


def test_run_pings_while_waiting_then_trips_at_the_deadline() -> None:
    async def scenario() -> tuple[str | None, int, float]:
        now = time.monotonic()
        watchdog = Watchdog(replace(FAST, first_token_timeout_s=0.45), now)
        watchdog.opened(now)
        watchdog.last_write_at = now
        pings = 0

        async def keepalive() -> None:
            nonlocal pings
            pings += 1
            watchdog.last_write_at = time.monotonic()

        await watchdog.run(None, keepalive)
        return watchdog.tripped, pings, time.monotonic() - now

    tripped, pings, elapsed = asyncio.run(scenario())
    assert tripped == "first_token_deadline"
    assert 3 <= pings <= 5  # every 0.1 s for 0.45 s
    assert 0.45 <= elapsed < 0.7


def test_a_keepalive_that_cannot_be_written_means_the_reader_stalled() -> None:
    async def scenario() -> str | None:
        now = time.monotonic()
        watchdog = Watchdog(FAST, now)
        watchdog.opened(now)
        watchdog.last_write_at = now

        async def stuck() -> None:
            await asyncio.sleep(3600)

        await watchdog.run(None, stuck)
        return watchdog.tripped

    assert asyncio.run(scenario()) == "reader_stalled"
