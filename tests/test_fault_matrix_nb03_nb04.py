"""The fault matrix (tests/fault_matrix.py) over the relays of notebooks nb03 and nb04."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fault_matrix import RelayServers, RelaySpec, check_relay, matrix_params, relay_servers

RELAYS = [
    "nb03-langchain",
    "nb03-chain-stream",
    "nb03-chain-events",
    "nb04-chat-app",
]


@pytest.fixture(scope="module")
def servers() -> Iterator[RelayServers]:
    with relay_servers() as started:
        yield started


@pytest.mark.parametrize(("spec", "fault"), matrix_params(RELAYS))
def test_relay_survives_fault(spec: RelaySpec, fault: str, servers: RelayServers) -> None:
    check_relay(spec, fault, servers)
