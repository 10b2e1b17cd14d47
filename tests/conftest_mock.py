"""Fixtures for the mock providers' own tests: a fresh mock per test, served on loopback."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from lessons.mock_providers import MockProviders
from lessons.toolkit.background import BackgroundServer

API_KEY = "test-key"
OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5-20251001"
ML_PROMPT = "What is machine learning?"
HELLO_PROMPT = "Say hello."


class _SharedHttpClient(httpx2.Client):
    """One HTTP client for every SDK client of a test module.

    Building an HTTP client loads the CA bundle (about 30 ms); tests build many SDK clients and
    close them with `with`, which must not close this shared one.
    """

    def close(self) -> None:
        pass

    def close_for_real(self) -> None:
        super().close()


@dataclass
class _Session:
    app: "_SwitchableApp"
    url: str
    sdk_http: _SharedHttpClient
    http: httpx.Client


@dataclass
class ServedMock:
    """A running mock and SDK clients pointed at it explicitly (never through the environment)."""

    mock: MockProviders
    url: str
    # Raw HTTP to the mock: `served.http.post("/v1/chat/completions", json=...)`.
    http: httpx.Client
    _sdk_http: _SharedHttpClient

    def openai_client(self, **options: Any) -> openai.OpenAI:
        options.setdefault("max_retries", 0)
        return openai.OpenAI(
            base_url=f"{self.url}/v1", api_key=API_KEY, http_client=self._sdk_http, **options
        )

    def async_openai_client(self, **options: Any) -> openai.AsyncOpenAI:
        # Async clients belong to one event loop each: never shared.
        options.setdefault("max_retries", 0)
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=API_KEY, **options)

    def anthropic_client(self, **options: Any) -> anthropic.Anthropic:
        options.setdefault("max_retries", 0)
        return anthropic.Anthropic(
            base_url=self.url, api_key=API_KEY, http_client=self._sdk_http, **options
        )

    def async_anthropic_client(self, **options: Any) -> anthropic.AsyncAnthropic:
        options.setdefault("max_retries", 0)
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=API_KEY, **options)


class _SwitchableApp:
    """An ASGI app that forwards to the current test's mock.

    One server per test module, and a fresh MockProviders per test: tests stay independent
    without paying a server start and stop each (uvicorn takes about 0.2 s to stop).
    """

    def __init__(self) -> None:
        self.mock = MockProviders()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.mock.app(scope, receive, send)


@pytest.fixture(scope="session")
def _mock_server() -> Iterator[_Session]:
    app = _SwitchableApp()
    sdk_http = _SharedHttpClient(timeout=30)
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        yield _Session(app, server.url, sdk_http, http)
    sdk_http.close_for_real()


@pytest.fixture
def served(_mock_server: _Session) -> ServedMock:
    """A fresh mock for this test, at zero delay, served by uvicorn in a background thread."""
    _mock_server.app.mock = MockProviders(ttft_ms=0, token_interval_ms=0)
    session = _mock_server
    return ServedMock(session.app.mock, session.url, session.http, session.sdk_http)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]
