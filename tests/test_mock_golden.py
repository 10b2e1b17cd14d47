"""The mock's answers to fixed requests, byte for byte, against transcripts kept in the repo.

Regenerate after a deliberate change with `UPDATE_GOLDEN=1 pytest tests/test_mock_golden.py`,
then read the diff: every changed byte is a change in what the lessons' relays receive.
"""

import os
from pathlib import Path
from typing import Any

import pytest

from lessons.mock_providers import Fault, MockProviders
from tests.conftest_mock import ANTHROPIC_MODEL, HELLO_PROMPT, OPENAI_MODEL, _mock_server, user

# Fixtures, imported so that pytest finds them.
__all__ = ["_mock_server"]

GOLDEN = Path(__file__).parent / "fixtures" / "mock_golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
# ids come from the seed and the request number, timestamps from `created`: fixed bytes.
SEED = "golden"
CREATED = 1767225600

TOOL_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
CHAT_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": TOOL_SCHEMA}}
WEATHER = "What is the weather in Paris?"


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": OPENAI_MODEL, "messages": user(HELLO_PROMPT), "stream": True, **extra}


def responses(**extra: Any) -> dict[str, Any]:
    return {"model": OPENAI_MODEL, "input": HELLO_PROMPT, "stream": True, **extra}


def messages(**extra: Any) -> dict[str, Any]:
    body = {"model": ANTHROPIC_MODEL, "max_tokens": 1024, "messages": user(HELLO_PROMPT)}
    return {**body, "stream": True, **extra}


# file name -> (path, body, fault, expected status)
CASES: dict[str, tuple[str, dict[str, Any], Fault | None, int]] = {
    "chat-text.sse": ("/v1/chat/completions", chat(), None, 200),
    "chat-include-usage.sse": (
        "/v1/chat/completions",
        chat(stream_options={"include_usage": True}),
        None,
        200,
    ),
    "chat-tool-call.sse": (
        "/v1/chat/completions",
        chat(messages=user(WEATHER), tools=[CHAT_TOOL], stream_options={"include_usage": True}),
        None,
        200,
    ),
    "chat-error-event.sse": ("/v1/chat/completions", chat(), Fault.error_event(3), 200),
    "chat-not-streaming.json": ("/v1/chat/completions", chat(stream=False), None, 200),
    "chat-429.json": ("/v1/chat/completions", chat(), Fault.http_error(429, retry_after=2), 429),
    "responses-text.sse": ("/v1/responses", responses(), None, 200),
    "responses-function-call.sse": (
        "/v1/responses",
        responses(
            input=WEATHER,
            tools=[{"type": "function", "name": "get_weather", "parameters": TOOL_SCHEMA}],
        ),
        None,
        200,
    ),
    "responses-error-event.sse": ("/v1/responses", responses(), Fault.error_event(2), 200),
    "messages-text.sse": ("/v1/messages", messages(system="Be brief."), None, 200),
    "messages-thinking-tool.sse": (
        "/v1/messages",
        messages(
            messages=user(WEATHER),
            thinking={"type": "enabled", "budget_tokens": 512},
            tools=[{"name": "get_weather", "input_schema": TOOL_SCHEMA}],
        ),
        None,
        200,
    ),
    "messages-error-event.sse": ("/v1/messages", messages(), Fault.error_event(2), 200),
    "messages-not-streaming.json": ("/v1/messages", messages(stream=False), None, 200),
    "messages-529.json": ("/v1/messages", messages(), Fault.http_error(529), 529),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_transcript(_mock_server: Any, name: str) -> None:
    path, body, fault, status = CASES[name]
    _mock_server.app.mock = mock = MockProviders(seed=SEED, created=CREATED)
    if fault is not None:
        mock.script(fault)
    response = _mock_server.http.post(path, json=body, headers={"authorization": "Bearer test-key"})
    assert response.status_code == status
    golden = GOLDEN / name
    if UPDATE:
        golden.write_bytes(response.content)
    assert response.content == golden.read_bytes(), f"{name} differs from the mock's answer"


def test_every_golden_file_has_a_case() -> None:
    assert sorted(path.name for path in GOLDEN.iterdir() if path.suffix != ".md") == sorted(CASES)
