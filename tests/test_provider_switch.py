"""The provider switch: mock by default with dummy keys and loopback in NO_PROXY; live only on
explicit opt-in, failing clearly without keys; never printing a key."""

from __future__ import annotations

import os

import httpx
import pytest

from lessons.toolkit import providers as switch
from lessons.toolkit.background import stop_background_servers


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch):
    for name in (
        "WORKBOOK_PROVIDER",
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "OPENAI_API_BASE",
        "ANTHROPIC_API_URL",
        "OPENAI_MODEL",
        "ANTHROPIC_MODEL",
        "NO_PROXY",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "learner-real-openai-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "learner-real-anthropic-key")
    monkeypatch.setattr(switch, "_original_env", None)
    yield
    stop_background_servers()


def test_mock_mode_points_the_sdks_at_a_running_mock(capsys: pytest.CaptureFixture[str]) -> None:
    providers = switch.use_providers()
    out = capsys.readouterr().out
    assert providers.mode == "mock" and providers.mock is not None
    assert os.environ["OPENAI_BASE_URL"].endswith("/v1")
    assert os.environ["OPENAI_BASE_URL"] == providers.openai_base_url
    assert os.environ["ANTHROPIC_BASE_URL"] == providers.anthropic_base_url
    assert not os.environ["ANTHROPIC_BASE_URL"].endswith("/v1")
    assert os.environ["OPENAI_API_KEY"] == switch.MOCK_OPENAI_KEY
    assert {"127.0.0.1", "localhost"} <= set(os.environ["NO_PROXY"].split(","))
    assert "Provider mode: mock" in out
    assert "gpt-4o-mini" in out and "claude-haiku-4-5-20251001" in out
    assert "key" not in out.lower().replace("no keys", "")
    assert "127.0.0.1" not in out  # no ports in notebook outputs
    response = httpx.post(
        f"{providers.openai_base_url}/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]},
        headers={"Authorization": "Bearer x"},
    )
    assert response.status_code == 200


def test_rerunning_the_setup_cell_replaces_the_mock() -> None:
    first = switch.use_providers(quiet=True)
    second = switch.use_providers(quiet=True)
    assert first.server is not None and second.server is not None
    assert not first.server.running and second.server.running
    assert os.environ["OPENAI_BASE_URL"] == second.openai_base_url


def test_model_names_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_MODEL", "gpt-test")
    providers = switch.use_providers(quiet=True)
    assert providers.openai_model == "gpt-test"
    assert providers.anthropic_model == "claude-haiku-4-5-20251001"


def test_existing_no_proxy_entries_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "corp.example")
    switch.use_providers(quiet=True)
    assert os.environ["NO_PROXY"].split(",") == ["corp.example", "127.0.0.1", "localhost"]


def test_live_mode_restores_learner_settings_and_never_prints_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    switch.use_providers(quiet=True)  # mock first, in the same kernel
    monkeypatch.setenv("WORKBOOK_PROVIDER", "live")
    providers = switch.use_providers()
    out = capsys.readouterr().out
    assert providers.mode == "live" and providers.mock is None
    assert os.environ["OPENAI_API_KEY"] == "learner-real-openai-key"
    assert "OPENAI_BASE_URL" not in os.environ
    assert providers.openai_base_url == "https://api.openai.com/v1"
    assert "learner-real" not in out
    assert "LIVE" in out


def test_live_mode_without_a_key_fails_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORKBOOK_PROVIDER", "live")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(switch.MissingKeyError, match="ANTHROPIC_API_KEY"):
        switch.use_providers()
    # A notebook that only needs OpenAI can still go live.
    assert switch.use_providers(needs=("openai",), quiet=True).mode == "live"
