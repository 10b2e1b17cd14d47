"""pytest fixtures: each test gets its own mock providers and runs lesson apps against them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.providers import MOCK_ANTHROPIC_KEY, MOCK_OPENAI_KEY

# CI sets CI=true: there a missing nginx or Chromium is a broken install, not a reason to skip.
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_or_skip(available: bool, reason: str) -> None:
    """Skip with a clear reason on a learner's laptop; fail under CI, where it must be there."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: .ci/run must install it)")
    pytest.skip(reason)


@pytest.fixture
def mock_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[BackgroundServer]:
    """A fresh mock provider server for this test, with the SDK environment pointed at it."""
    from lessons.mock_providers import MockProviders

    mock = MockProviders(ttft_ms=0, token_interval_ms=0)
    with BackgroundServer(mock.app) as server:
        server.mock = mock  # type: ignore[attr-defined]
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", MOCK_OPENAI_KEY)
        monkeypatch.setenv("ANTHROPIC_API_KEY", MOCK_ANTHROPIC_KEY)
        for name in ("OPENAI_API_BASE", "ANTHROPIC_API_URL", "OPENAI_MODEL", "ANTHROPIC_MODEL"):
            monkeypatch.delenv(name, raising=False)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.setenv(name, "127.0.0.1,localhost")
        yield server


@pytest.fixture
def mock(mock_server: BackgroundServer) -> Any:
    """The MockProviders of this test (script faults, set timing, read observations)."""
    return mock_server.mock  # type: ignore[attr-defined]


@pytest.fixture
def serve(mock_server: BackgroundServer) -> Iterator[Callable[[Any], str]]:
    """Start lesson apps against this test's mock: `url = serve(app)`; stopped after the test.

    The app's lifespan runs at start, after the environment points at the mock, so the SDK
    clients it creates talk to this test's mock and no other.
    """
    servers: list[BackgroundServer] = []

    def start(app: Any) -> str:
        server = BackgroundServer(app).start()
        servers.append(server)
        return server.url

    yield start
    for server in reversed(servers):
        server.stop()
