"""The provider switch: mock providers by default, the real APIs only on explicit opt-in."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from lessons.toolkit.background import BackgroundServer, serve_in_background
from lessons.toolkit.logs import keep_server_log

if TYPE_CHECKING:
    from lessons.mock_providers import MockProviders

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_ANTHROPIC_MODEL = "claude-haiku-4-5-20251001"

# Dummy keys: the SDKs refuse to start without one, and the mock accepts any.
MOCK_OPENAI_KEY = "mock-openai-key"
MOCK_ANTHROPIC_KEY = "mock-anthropic-key"

# Variables the switch may set; their values from before the first switch are kept so that
# switching to live mode in the same kernel restores the learner's own settings.
_MANAGED = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY")
# LangChain reads these before the SDK variables; a stale one would bypass the mock.
_OVERRIDING = ("OPENAI_API_BASE", "ANTHROPIC_API_URL")
_original_env: dict[str, str | None] | None = None

Mode = Literal["mock", "live"]


class MissingKeyError(RuntimeError):
    """Live mode was requested but a provider key is not set."""


@dataclass(frozen=True)
class Providers:
    """What the setup cell started: the mode, and the mock with its server in mock mode."""

    mode: Mode
    openai_base_url: str
    anthropic_base_url: str
    openai_model: str
    anthropic_model: str
    mock: MockProviders | None = None
    server: BackgroundServer | None = None

    def describe(self) -> str:
        if self.mode == "mock":
            where = "mock providers (local fake OpenAI and Anthropic APIs; no keys, no network)"
        else:
            where = "LIVE providers (real OpenAI and Anthropic APIs, billed to your keys)"
        return (
            f"Provider mode: {self.mode}: {where}\n"
            f"Models: OpenAI {self.openai_model}, Anthropic {self.anthropic_model}"
        )


def requested_mode() -> Mode:
    return "live" if os.environ.get("WORKBOOK_PROVIDER", "").strip().lower() == "live" else "mock"


def _remember_original_env() -> None:
    global _original_env
    if _original_env is None:
        _original_env = {name: os.environ.get(name) for name in _MANAGED + _OVERRIDING}


def _restore_original_env() -> None:
    if _original_env is None:
        return
    for name, value in _original_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _add_loopback_to_no_proxy() -> None:
    # A learner's HTTP(S)_PROXY must never capture traffic to servers on this machine.
    for name in ("NO_PROXY", "no_proxy"):
        entries = [e.strip() for e in os.environ.get(name, "").split(",") if e.strip()]
        for host in ("127.0.0.1", "localhost"):
            if host not in entries:
                entries.append(host)
        os.environ[name] = ",".join(entries)


def _in_a_notebook() -> bool:
    shell = sys.modules.get("IPython")
    return shell is not None and shell.get_ipython() is not None  # type: ignore[attr-defined]


def _models() -> tuple[str, str]:
    return (
        os.environ.get("OPENAI_MODEL", DEFAULT_OPENAI_MODEL),
        os.environ.get("ANTHROPIC_MODEL", DEFAULT_ANTHROPIC_MODEL),
    )


def use_providers(
    *,
    ttft_ms: float = 0,
    token_interval_ms: float = 0,
    needs: Iterable[str] = ("openai", "anthropic"),
    quiet: bool = False,
) -> Providers:
    """Point the SDKs at the mock (default) or, with WORKBOOK_PROVIDER=live, at the real APIs.

    In mock mode this starts a fresh mock in a background thread (replacing the one a previous run
    of the cell started) and sets OPENAI_BASE_URL, ANTHROPIC_BASE_URL and dummy keys. It never
    prints a key.
    """
    _remember_original_env()
    _add_loopback_to_no_proxy()
    if _in_a_notebook():
        # The lesson apps' log goes to memory, not to the cell's stderr (lessons.toolkit.logs).
        keep_server_log()
    openai_model, anthropic_model = _models()
    if requested_mode() == "live":
        _restore_original_env()
        missing = [
            f"{name.upper()}_API_KEY"
            for name in needs
            if not os.environ.get(f"{name.upper()}_API_KEY")
        ]
        if missing:
            raise MissingKeyError(
                f"WORKBOOK_PROVIDER=live needs {' and '.join(missing)} in the environment of the "
                "Jupyter server (export it before `make lab`), or unset WORKBOOK_PROVIDER to use "
                "the mock providers."
            )
        providers = Providers(
            mode="live",
            openai_base_url=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"),
            anthropic_base_url=os.environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
            openai_model=openai_model,
            anthropic_model=anthropic_model,
        )
    else:
        from lessons.mock_providers import MockProviders

        mock = MockProviders(ttft_ms=ttft_ms, token_interval_ms=token_interval_ms)
        server = serve_in_background(mock.app, name="mock-providers")
        for name in _OVERRIDING:
            os.environ.pop(name, None)
        os.environ["OPENAI_BASE_URL"] = f"{server.url}/v1"
        os.environ["ANTHROPIC_BASE_URL"] = server.url
        os.environ["OPENAI_API_KEY"] = MOCK_OPENAI_KEY
        os.environ["ANTHROPIC_API_KEY"] = MOCK_ANTHROPIC_KEY
        providers = Providers(
            mode="mock",
            openai_base_url=os.environ["OPENAI_BASE_URL"],
            anthropic_base_url=os.environ["ANTHROPIC_BASE_URL"],
            openai_model=openai_model,
            anthropic_model=anthropic_model,
            mock=mock,
            server=server,
        )
    if not quiet:
        print(providers.describe())
    return providers


@contextmanager
def sdk_env_pointed_at(mock_url: str) -> Iterator[None]:
    """Point the SDK variables at the mock served at `mock_url` while the block runs.

    For checkers that run apps against a mock of their own: start the apps inside the block (their
    lifespans read the variables), and the learner's settings come back afterwards.
    """
    wanted = {
        "OPENAI_BASE_URL": f"{mock_url}/v1",
        "OPENAI_API_KEY": MOCK_OPENAI_KEY,
        "ANTHROPIC_BASE_URL": mock_url,
        "ANTHROPIC_API_KEY": MOCK_ANTHROPIC_KEY,
    }
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
