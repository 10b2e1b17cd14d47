"""The fault matrix (tests/fault_matrix.py) over the relays of notebooks 05, 06 and 09."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fault_matrix import RelayServers, RelaySpec, check_relay, matrix_params, relay_servers

RELAYS = [
    "nb05-resilient",
    "nb05-protected",
    "nb06-relay",
    "nb06-resumable",
    "nb09-fast",
]


@pytest.fixture(scope="module")
def servers() -> Iterator[RelayServers]:
    with relay_servers() as started:
        yield started


@pytest.mark.parametrize(("spec", "fault"), matrix_params(RELAYS))
def test_relay_survives_fault(spec: RelaySpec, fault: str, servers: RelayServers) -> None:
    check_relay(spec, fault, servers)
