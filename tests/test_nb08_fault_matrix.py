"""The core's lifecycle fault matrix (tests/fault_matrix.py) over notebook 08's two routes.

`POST /api/chat` streams a generation (so that a reload can resume it): a client that leaves
stops it once it is abandoned, here after a twentieth of a second. `POST /api/agent` streams the
LangGraph agent directly. Both speak the AI SDK's UI message stream, which ends with the
`data: [DONE]` sentinel after its terminal chunk: the matrix reads that sentinel as the end of
the stream, not as an event after the terminal one (the only difference from the other routes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from lessons.chat_ui.app import create_app
from lessons.relay_core import read_event
from tests import fault_matrix
from tests.fault_matrix import (
    FAST,
    PROTECTION,
    RelayServers,
    RelaySpec,
    check_relay,
    matrix_params,
    relay_servers,
)

BODY = {
    "id": "matrix-chat",
    "messages": [
        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": fault_matrix.PROMPT}]}
    ],
    "trigger": "submit-message",
    "tools": [],
}
ABANDON_AFTER_S = 0.05


@dataclass(frozen=True)
class ChatUISpec(RelaySpec):
    def load(self) -> Any:
        return create_app(FAST, PROTECTION, abandon_after_s=ABANDON_AFTER_S)


SPECS = [
    ChatUISpec("nb08-chat", "lessons.chat_ui.app", "/api/chat", BODY, lesson=False),
    ChatUISpec("nb08-agent", "lessons.chat_ui.app", "/api/agent", BODY, lesson=False),
]
for spec in SPECS:
    fault_matrix.RELAYS_BY_NAME.setdefault(spec.name, spec)


def kinds_without_sentinel(self: fault_matrix.Exchange) -> list[str]:
    return [read_event(e.event, e.data).kind for e in self.events if e.data != "[DONE]"]


@pytest.fixture(scope="module")
def servers() -> Iterator[RelayServers]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fault_matrix.Exchange, "kinds", kinds_without_sentinel)
        with relay_servers() as started:
            yield started


@pytest.mark.parametrize(("spec", "fault"), matrix_params([s.name for s in SPECS]))
def test_route_survives_fault(spec: RelaySpec, fault: str, servers: RelayServers) -> None:
    check_relay(spec, fault, servers)
