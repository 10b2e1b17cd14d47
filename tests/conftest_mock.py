"""Fixtures for the mock providers' own tests: a fresh mock per test, served on loopback."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from lessons.mock_providers import MockProviders
from lessons.toolkit.background import BackgroundServer

API_KEY = "test-key"
OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5-20251001"
ML_PROMPT = "What is machine learning?"
HELLO_PROMPT = "Say hello."


@dataclass
class ServedMock:
    """A running mock and SDK clients pointed at it explicitly (never through the environment)."""

    mock: MockProviders
    url: str

    def openai_client(self, **options: Any) -> openai.OpenAI:
        options.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=API_KEY, **options)

    def async_openai_client(self, **options: Any) -> openai.AsyncOpenAI:
        options.setdefault("max_retries", 0)
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=API_KEY, **options)

    def anthropic_client(self, **options: Any) -> anthropic.Anthropic:
        options.setdefault("max_retries", 0)
        return anthropic.Anthropic(base_url=self.url, api_key=API_KEY, **options)

    def async_anthropic_client(self, **options: Any) -> anthropic.AsyncAnthropic:
        options.setdefault("max_retries", 0)
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=API_KEY, **options)


class _SwitchableApp:
    """An ASGI app that forwards to the current test's mock.

    One server per test session, and a fresh MockProviders per test: tests stay independent
    without paying a server start and stop each (uvicorn takes about 0.2 s to stop).
    """

    def __init__(self) -> None:
        self.mock = MockProviders()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.mock.app(scope, receive, send)


@pytest.fixture(scope="session")
def _mock_server() -> Iterator[tuple[_SwitchableApp, str]]:
    app = _SwitchableApp()
    with BackgroundServer(app) as server:
        yield app, server.url


@pytest.fixture
def served(_mock_server: tuple[_SwitchableApp, str]) -> ServedMock:
    """A fresh mock for this test, at zero delay, served by uvicorn in a background thread."""
    app, url = _mock_server
    app.mock = MockProviders(ttft_ms=0, token_interval_ms=0)
    return ServedMock(app.mock, url)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]
