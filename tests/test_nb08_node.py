"""Every response of notebook 08's routes, read by the `ai` package's own parser and schemas in
Node (what useChat's default transport runs), and the page's committed build rebuilt from the
lockfile. Without Node 22+ and the frontend's packages these skip with a reason (and fail under
CI=true, where .ci/run installs them: `python -m lessons.toolkit.node setup`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lessons.chat_ui.app import create_app
from lessons.chat_ui.assemble import assemble
from lessons.mock_providers import CANNED_REPLIES, Fault, MockProviders
from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.node import (
    FRONTEND,
    PINNED_VERSION,
    ai_sdk_read,
    node_ready,
    node_version,
    run_node,
)
from lessons.toolkit.providers import sdk_env_pointed_at
from lessons.toolkit.pytest_fixtures import IN_CI, require_or_skip
from lessons.toolkit.ui_stream import UITurn, turn_body, ui_turn


@pytest.fixture(scope="module")
def node() -> None:
    require_or_skip(*node_ready())


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[MockProviders, str]]:
    mock = MockProviders()
    with BackgroundServer(mock.app) as mock_server, sdk_env_pointed_at(mock_server.url):
        server = BackgroundServer(create_app(retain_s=30)).start()
        try:
            yield mock, server.url
        finally:
            server.stop()


def _stopped(mock: MockProviders, url: str) -> UITurn:
    mock.script(token_interval_ms=20, times=1)
    body = turn_body("What is machine learning?", chat_id="node-stop", tools=[])
    timer = threading.Timer(0.4, lambda: httpx.delete(url + "/api/chat/node-stop/stream"))
    timer.start()
    try:
        return ui_turn(url + "/api/chat", body, timeout=20)
    finally:
        timer.join()


def _resumed(mock: MockProviders, url: str) -> UITurn:
    body = turn_body("Look up Paris and Tokyo in the city table.", chat_id="node-resume")
    ui_turn(url + "/api/chat", body, stop_after=4, timeout=20)
    time.sleep(0.3)
    return ui_turn(url + "/api/chat/node-resume/stream", None, method="GET", timeout=20)


def _faulty(fault: Fault, path: str = "/api/chat") -> Callable[[MockProviders, str], UITurn]:
    def run(mock: MockProviders, url: str) -> UITurn:
        mock.script(fault=fault, times=None)
        return ui_turn(url + path, turn_body("What is machine learning?", tools=[]), timeout=20)

    return run


def _turn(text: str, path: str = "/api/chat", **options: Any) -> Callable[..., UITurn]:
    return lambda mock, url: ui_turn(url + path, turn_body(text, **options), timeout=20)


# name -> how to get the response, and whether it ends in an error chunk.
SCENARIOS: dict[str, tuple[Callable[[MockProviders, str], UITurn], bool]] = {
    "text": (_turn("Say hello.", tools=[]), False),
    "text-anthropic": (_turn("Say hello.", tools=[], provider="anthropic"), False),
    "reasoning-openai": (_turn("Say hello.", tools=[], reasoning=True), False),
    "reasoning-anthropic": (
        _turn("Say hello.", tools=[], reasoning=True, provider="anthropic"),
        False,
    ),
    "tool": (_turn("Convert 10 km to miles."), False),
    "parallel-openai": (_turn("Look up Paris and Tokyo in the city table."), False),
    "parallel-anthropic": (
        _turn("Look up Paris and Tokyo in the city table.", provider="anthropic", reasoning=True),
        False,
    ),
    "failing-tool": (_turn("Look up Atlantis in the city table."), False),
    "invalid-input": (_turn("Convert 99999999999 km to miles."), False),
    "error-during": (_faulty(Fault.error_event(3)), True),
    "cut-short": (_faulty(Fault.end_early(3)), True),
    "stopped": (_stopped, False),
    "resumed": (_resumed, False),
    "agent-text": (_turn("Say hello.", "/api/agent", tools=[]), False),
    "agent-tools": (_turn("Look up Paris and Tokyo in the city table.", "/api/agent"), False),
    "agent-error": (_faulty(Fault.error_event(3), "/api/agent"), True),
}


def _without_none(value: Any) -> Any:
    """JSON as JavaScript writes it: keys whose value is undefined are left out."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def test_every_kind_of_response_is_read_by_the_ai_sdk_as_sent(node, served) -> None:
    mock, url = served
    turns: dict[str, UITurn] = {}
    for name, (run, _) in SCENARIOS.items():
        mock.reset()
        turns[name] = run(mock, url)
        assert turns[name].record.status == 200, (name, turns[name].raw[:300])
    read = ai_sdk_read({name: turn.raw for name, turn in turns.items()})
    for name, (_, fails) in SCENARIOS.items():
        result, turn = read[name], turns[name]
        assert result["schemaErrors"] == [], (name, result["schemaErrors"])
        assert result["types"] == turn.types(), name
        assert result["messageValid"] is True, (name, result["messageValid"])
        built = assemble(turn.chunks)
        if fails:
            assert result["streamErrors"] == [built.error], name
        else:
            assert result["streamErrors"] == [], (name, result["streamErrors"])
        # The server builds (and keeps) the very message useChat builds.
        assert _without_none(result["message"]) == built.message, name
    assert "abort" in turns["stopped"].types()
    assert turns["resumed"].types()[0] == "start"


def test_the_messages_the_server_keeps_are_valid_ui_messages(node, served) -> None:
    mock, _ = served
    mock.reset()
    # Kept replies show in the chat's messages once they are no longer replayable.
    server = BackgroundServer(create_app(retain_s=0.2)).start()
    try:
        body = turn_body("Look up Atlantis in the city table.", chat_id="node-kept")
        reply = ui_turn(server.url + "/api/chat", body, timeout=20)
        time.sleep(0.5)
        kept = httpx.get(server.url + "/api/chat/node-kept").json()["messages"]
    finally:
        server.stop()
    assert [m["role"] for m in kept] == ["user", "assistant"]
    assert kept[1] == assemble(reply.chunks).message
    read = ai_sdk_read({}, {"kept": kept})
    assert read["kept"]["messageValid"] is True, read["kept"]


@pytest.mark.slow
def test_many_replies_are_read_by_the_ai_sdk_as_sent(node, served) -> None:
    mock, url = served
    mock.reset()
    prompts = [*CANNED_REPLIES, "Convert 3.5 kg to pounds.", "Look up Lima, Oslo and Nairobi."]
    bodies: dict[str, bytes] = {}
    for index, prompt in enumerate(prompts):
        for provider in ("openai", "anthropic"):
            for tools in (None, []):
                body = turn_body(
                    prompt, provider=provider, **({} if tools is None else {"tools": []})
                )
                bodies[f"{index}-{provider}-{tools}"] = ui_turn(
                    url + "/api/chat", body, timeout=20
                ).raw
        bodies[f"{index}-agent"] = ui_turn(url + "/api/agent", turn_body(prompt), timeout=20).raw
    read = ai_sdk_read(bodies)
    for name, result in read.items():
        assert result["schemaErrors"] == [] and result["streamErrors"] == [], name
        assert result["messageValid"] is True, (name, result["messageValid"])


def test_the_committed_build_is_what_the_lockfile_builds(node, tmp_path: Path) -> None:
    result = run_node("build.mjs", "--outdir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("index.html", "app.js", "app.css"):
        built, committed = (tmp_path / name).read_bytes(), (FRONTEND / "dist" / name).read_bytes()
        assert built == committed, f"dist/{name} is stale: run `node build.mjs` in {FRONTEND.name}/"


def test_ci_runs_the_pinned_node() -> None:
    if not IN_CI:
        pytest.skip("only CI must run exactly the pinned Node; a learner's Node 22+ will do")
    assert node_version() == PINNED_VERSION
