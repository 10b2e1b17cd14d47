"""Each check of the fault matrix (tests/fault_matrix.py) catches the pitfall built to break it.

The lesson relays pass every check (tests/test_fault_matrix_*.py); a check that no wrong relay
fails would prove nothing, so each one is run here against a pitfall app that must fail it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fault_matrix import CHECKS, FAULTS, RELAYS, RelaySpec, pitfall, run_case


def resilient(module: str, **options: Any) -> RelaySpec:
    return pitfall(module.removesuffix("_pitfall"), f"lessons.resilient_relay.{module}", **options)


LEAKY = resilient("leaky_errors_pitfall")
NO_DEADLINE = resilient("no_deadline_pitfall")
UNVALIDATED = resilient("unvalidated_pitfall")

PITFALL_CASES = [
    (LEAKY, "error_event", "no_secrets"),
    (LEAKY, "http_500", "no_secrets"),
    (resilient("silent_error_pitfall"), "error_event", "one_terminal"),
    (resilient("late_open_pitfall"), "http_429", "http_error_json"),
    (resilient("detached_producer_pitfall"), "client_disconnect", "upstream_cancelled"),
    # It claims a 0.3 s silence limit, as the lesson relays have, but enforces none.
    (resilient("no_deadline_pitfall", idle_limit_s=0.3), "stall", "bounded"),
    (resilient("leaked_slot_pitfall"), "error_event", "next_request"),
    (UNVALIDATED, "invalid_input", "validation"),
    # It sends `done` whenever the provider's stream stops, end marker or not.
    (NO_DEADLINE, "end_early", "truncation_reported"),
    # It awaits the provider in the route, where nothing watches the client, and keeps the
    # generator that would close the upstream alive without ever starting it.
    (resilient("tracked_streams_pitfall"), "leave_during_open", "leave_during_open"),
    # Its generator runs in the threadpool: nothing tells it the client left.
    (
        pitfall("def-generator", "lessons.two_providers.def_generator_pitfall"),
        "leave_before_first_token",
        "leave_before_first_token",
    ),
    (
        pitfall("native-sse", "lessons.sse_basics.native_sse_pitfall", "/chat/events"),
        "frozen_reader",
        "frozen_reader",
    ),
    (UNVALIDATED, "oversized_body", "body_limit"),
    (NO_DEADLINE, "unauthenticated", "authentication"),
    (NO_DEADLINE, "invalid_token", "authentication"),
    (NO_DEADLINE, "budget_exceeded", "budget"),
]


def test_every_check_has_a_pitfall() -> None:
    assert {check for *_, check in PITFALL_CASES} == set(CHECKS)


def test_every_fault_is_run_against_every_relay() -> None:
    covered = {(name, fault) for name in (spec.name for spec in RELAYS) for fault in FAULTS}
    assert len(covered) == len(RELAYS) * len(FAULTS)


@pytest.mark.parametrize(
    ("spec", "fault", "check"),
    PITFALL_CASES,
    ids=[f"{spec.name}-{fault}-{check}" for spec, fault, check in PITFALL_CASES],
)
def test_check_catches_its_pitfall(
    spec: RelaySpec, fault: str, check: str, mock: Any, serve: Any
) -> None:
    # A pitfall may leave a slot taken or a pump running: each gets a mock and server of its own.
    url = serve(spec.load())
    result = run_case(url, spec, fault, mock)
    assert check in result.failed, f"{spec.name} x {fault} passed {check!r}: {result.failed}"
