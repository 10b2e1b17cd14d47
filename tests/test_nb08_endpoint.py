"""`POST /api/chat` and `/api/agent` against the mock: every kind of turn, resuming, stopping,
errors before and during the stream, authentication. Chunk order and contents are checked here;
that `ai`'s own parser accepts them is `test_nb08_node.py`'s job."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from lessons.chat_ui.app import create_app
from lessons.chat_ui.turn import TurnLimits
from lessons.mock_providers import Fault, MockProviders
from lessons.relay_core import ProtectionSettings
from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.providers import sdk_env_pointed_at
from lessons.toolkit.testkit import assert_http_error, assert_incremental, assert_streaming_headers
from lessons.toolkit.ui_stream import UITurn, turn_body, ui_turn

TOKEN = "chat-ui-client-token-0123456789"
OTHER = "chat-ui-other-token-9876543210"


@dataclass
class Site:
    mock: MockProviders
    url: str

    def turn(self, text: str, path: str = "/api/chat", **options: Any) -> UITurn:
        return ui_turn(self.url + path, turn_body(text, **options), timeout=20)


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    mock = MockProviders()
    with BackgroundServer(mock.app) as mock_server, sdk_env_pointed_at(mock_server.url):
        server = BackgroundServer(create_app(abandon_after_s=1.0, retain_s=1.5)).start()
        try:
            yield Site(mock, server.url)
        finally:
            server.stop()


@pytest.fixture(autouse=True)
def fresh(site: Site) -> None:
    site.mock.reset()


def requests_of(site: Site) -> list[Any]:
    return site.mock.requests


# --- plain replies -------------------------------------------------------------------------------


def test_a_plain_reply_streams_the_protocol_with_its_header(site: Site) -> None:
    site.mock.script(token_interval_ms=15)
    turn = site.turn("Explain streaming in one paragraph.", tools=[])
    assert_streaming_headers(turn.record)
    assert turn.record.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert turn.record.headers["x-request-id"].startswith("req_")
    assert all(e.event == "message" and not e.id for e in turn.record.events), "data-only events"
    assert turn.types()[:3] == ["start", "start-step", "text-start"]
    assert turn.types()[-3:] == ["text-end", "finish-step", "finish"]
    assert turn.ends_with_done_sentinel()
    seen = site.mock.last_request()
    assert turn.text() == seen.reply_text
    assert seen.endpoint == "responses" and "tools" not in seen.body
    usage = turn.chunks[-1]["messageMetadata"]["usage"]
    assert usage == {
        "inputTokens": seen.input_tokens,
        "outputTokens": seen.tokens_planned,
        "totalTokens": seen.input_tokens + seen.tokens_planned,
    }
    assert turn.chunks[-1]["finishReason"] == "stop"
    assert_incremental(turn.record, seen, mock=site.mock)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_reasoning_streams_before_the_text(site: Site, provider: str) -> None:
    turn = site.turn("Say hello.", tools=[], provider=provider, reasoning=True)
    kinds = turn.types()
    assert kinds.index("reasoning-end") < kinds.index("text-start")
    reasoning = "".join(c["delta"] for c in turn.of_type("reasoning-delta"))
    assert reasoning.startswith('The user asks: "Say hello."')
    assert turn.text() == "Hello! How can I help you today?"
    sent = site.mock.last_request().body
    if provider == "openai":
        assert sent["reasoning"] == {"summary": "auto"}
    else:
        assert sent["thinking"]["type"] == "enabled"
        assert sent["max_tokens"] > sent["thinking"]["budget_tokens"]


# --- tools ---------------------------------------------------------------------------------------


def tool_parts(turn: UITurn) -> dict[str, dict[str, Any]]:
    """Per tool call id: its name, input text, and how it ended."""
    calls: dict[str, dict[str, Any]] = {}
    for chunk in turn.chunks:
        call = calls.setdefault(chunk.get("toolCallId", ""), {"text": ""})
        if chunk["type"] == "tool-input-start":
            call["name"] = chunk["toolName"]
        elif chunk["type"] == "tool-input-delta":
            call["text"] += chunk["inputTextDelta"]
        elif chunk["type"] in ("tool-input-available", "tool-input-error"):
            call["input"] = chunk["input"]
        if chunk["type"] in ("tool-output-available", "tool-output-error", "tool-input-error"):
            call["end"] = chunk["type"]
            call["result"] = chunk.get("output", chunk.get("errorText"))
    calls.pop("", None)
    return calls


def test_a_tool_call_streams_runs_and_the_turn_continues(site: Site) -> None:
    turn = site.turn("Convert 10 km to miles.")
    (call,) = tool_parts(turn).values()
    assert call["name"] == "convert_units"
    assert (
        json.loads(call["text"])
        == call["input"]
        == {
            "value": 10,
            "from_unit": "km",
            "to_unit": "miles",
        }
    )
    assert call["end"] == "tool-output-available" and call["result"]["result"] == 6.2137
    assert turn.types().count("start-step") == 2 and turn.types().count("finish-step") == 2
    first, second = requests_of(site)
    outputs = [i for i in second.body["input"] if i.get("type") == "function_call_output"]
    assert [json.loads(o["output"])["result"] for o in outputs] == [6.2137]
    assert turn.text() == second.reply_text and "6.2137" in turn.text()
    usage = turn.chunks[-1]["messageMetadata"]["usage"]
    assert usage["outputTokens"] == first.tokens_planned + second.tokens_planned
    assert usage["inputTokens"] == first.input_tokens + second.input_tokens


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_parallel_tool_calls_each_get_their_output(site: Site, provider: str) -> None:
    turn = site.turn("Look up Paris and Tokyo in the city table.", provider=provider)
    calls = list(tool_parts(turn).values())
    assert [c["input"] for c in calls] == [{"city": "Paris"}, {"city": "Tokyo"}]
    assert [c["result"]["country"] for c in calls] == ["France", "Japan"]
    assert len(requests_of(site)) == 2
    assert "France" in turn.text() and "Japan" in turn.text()
    progress = turn.of_type("data-tool-progress")
    assert {p["id"] for p in progress} == {f"progress-{cid}" for cid in tool_parts(turn)}


def test_interleaved_parallel_inputs_are_assembled_by_index(site: Site) -> None:
    site.mock.script(prompt_contains="Lisbon", interleave_tool_calls=True)
    turn = site.turn("Look up Lisbon and Oslo in the city table.")
    deltas = [c["toolCallId"] for c in turn.of_type("tool-input-delta")]
    assert deltas[:4] == [deltas[0], deltas[1], deltas[0], deltas[1]], "the pieces alternate"
    calls = list(tool_parts(turn).values())
    assert [c["input"] for c in calls] == [{"city": "Lisbon"}, {"city": "Oslo"}]
    assert all(c["end"] == "tool-output-available" for c in calls)


def test_a_failing_tool_gives_output_error_and_the_turn_goes_on(site: Site) -> None:
    turn = site.turn("Look up Atlantis in the city table.")
    (call,) = tool_parts(turn).values()
    assert call["end"] == "tool-output-error"
    assert call["result"] == "No city named 'Atlantis' in the table."
    second = requests_of(site)[1]
    (output,) = [i for i in second.body["input"] if i.get("type") == "function_call_output"]
    assert json.loads(output["output"]) == {"error": "No city named 'Atlantis' in the table."}
    assert turn.chunks[-1] == turn.of_type("finish")[0] and turn.text()


def test_invalid_tool_input_gives_input_error_and_the_turn_goes_on(site: Site) -> None:
    turn = site.turn("Convert 99999999999 km to miles.")
    (call,) = tool_parts(turn).values()
    assert call["end"] == "tool-input-error"
    assert call["result"].startswith("Invalid input: value:")
    assert "tool-input-available" not in turn.types()
    assert turn.of_type("finish")[0]["finishReason"] == "stop" and turn.text()


def test_steps_are_bounded(site: Site) -> None:
    # The module's environment already points the SDKs at this module's mock.
    server = BackgroundServer(create_app(limits=TurnLimits(max_steps=1))).start()
    try:
        turn = ui_turn(server.url + "/api/chat", turn_body("Convert 10 km to miles."), timeout=20)
    finally:
        server.stop()
    assert len(requests_of(site)) == 1, "no second provider call past max_steps"
    assert turn.types().count("tool-output-available") == 1
    assert turn.chunks[-1]["type"] == "finish" and turn.chunks[-1]["finishReason"] == "tool-calls"


# --- failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "expected"), [(429, 429), (529, 503), (401, 502)])
@pytest.mark.parametrize("path", ["/api/chat", "/api/agent"])
def test_a_provider_failure_before_the_stream_is_an_http_error(
    site: Site, status: int, expected: int, path: str
) -> None:
    site.mock.script(fault=Fault.http_error(status, retry_after=2), times=None)
    turn = site.turn("Say hello.", path=path, tools=[])
    error = assert_http_error(turn.record, expected)
    assert error["message"] and "mock" not in turn.raw.decode()
    if status == 429:
        assert turn.record.headers["retry-after"] == "2"


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault.error_event(3), "provider_error"),
        (Fault.end_early(3), "stream_interrupted"),
        (Fault.drop(3), "stream_interrupted"),
    ],
)
@pytest.mark.parametrize("path", ["/api/chat", "/api/agent"])
def test_a_failure_during_the_stream_is_one_error_chunk_then_done(
    site: Site, fault: Fault, code: str, path: str
) -> None:
    site.mock.script(fault=fault, times=None)
    turn = site.turn("What is machine learning?", path=path, tools=[])
    assert turn.record.status == 200 and turn.ends_with_done_sentinel()
    last = turn.chunks[-1]
    assert last["type"] == "error" and last["code"] == code
    assert last["request_id"] == turn.record.headers["x-request-id"]
    assert [c["type"] for c in turn.chunks].count("error") == 1
    assert "finish" not in turn.types() and turn.text()


# --- resuming, stopping, the chat's messages -----------------------------------------------------


def read_some(url: str, body: dict[str, Any], chunks: int) -> None:
    """A page that reads a few chunks and goes away (a reload)."""
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", url + "/api/chat", json=body) as response,
    ):
        for seen, _ in enumerate(response.iter_lines()):
            if seen >= chunks * 2:
                break


def test_a_page_that_leaves_resumes_and_gets_the_whole_reply(site: Site) -> None:
    site.mock.script(token_interval_ms=10)
    body = turn_body("Explain streaming in one paragraph.", chat_id="resume-1", tools=[])
    read_some(site.url, body, chunks=5)
    history = httpx.get(site.url + "/api/chat/resume-1").json()["messages"]
    assert [m["role"] for m in history] == ["user"], "the reply comes from the stream, not here"
    resumed = ui_turn(site.url + "/api/chat/resume-1/stream", None, method="GET", timeout=20)
    assert resumed.record.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert resumed.types()[0] == "start" and resumed.types()[-1] == "finish"
    (seen,) = requests_of(site)
    assert resumed.text() == seen.reply_text, "replayed from its start, with nothing lost"
    again = ui_turn(site.url + "/api/chat/resume-1/stream", None, method="GET", timeout=20)
    assert again.chunks == resumed.chunks, "a finished reply replays the same while retained"
    time.sleep(1.7)  # past retain_s: the reply is now in the chat's messages
    gone = httpx.get(site.url + "/api/chat/resume-1/stream")
    assert gone.status_code == 204
    history = httpx.get(site.url + "/api/chat/resume-1").json()["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[1]["id"] == resumed.chunks[0]["messageId"]
    assert history[1]["parts"][-1] == {"type": "text", "text": seen.reply_text, "state": "done"}


def test_nothing_to_resume_is_204(site: Site) -> None:
    assert httpx.get(site.url + "/api/chat/never-seen/stream").status_code == 204
    assert httpx.get(site.url + "/api/chat/never-seen").json() == {
        "id": "never-seen",
        "messages": [],
    }
    assert httpx.get(site.url + "/api/chat/..%2F/stream").status_code in (404, 422)


def test_stop_ends_the_reply_with_abort_and_cancels_the_upstream(site: Site) -> None:
    site.mock.script(token_interval_ms=30)
    body = turn_body("What is machine learning?", chat_id="stop-1", tools=[])
    stopper = threading.Timer(
        0.6, lambda: httpx.delete(site.url + "/api/chat/stop-1/stream", timeout=5)
    )
    stopper.start()
    turn = ui_turn(site.url + "/api/chat", body, timeout=20)
    stopper.join()
    assert turn.chunks[-1]["type"] == "abort" and turn.chunks[-1]["code"] == "stopped"
    assert turn.ends_with_done_sentinel() and turn.text()
    seen = site.mock.wait_until_finished(site.mock.last_request(), timeout=5)
    assert seen.outcome == "client_disconnected" and seen.tokens_sent < seen.tokens_planned


def test_stop_takes_effect_while_pieces_flow_faster_than_the_producers_checks(site: Site) -> None:
    """2 ms a piece: the core's producer, not the turn, notices the stop between pieces."""
    site.mock.script(reply=tuple(["word "] * 2_000), token_interval_ms=2)
    body = turn_body("What is machine learning?", chat_id="stop-fast", tools=[])
    stopper = threading.Timer(
        0.6, lambda: httpx.delete(site.url + "/api/chat/stop-fast/stream", timeout=5)
    )
    stopper.start()
    turn = ui_turn(site.url + "/api/chat", body, timeout=20)
    stopper.join()
    assert turn.chunks[-1]["type"] == "abort" and turn.chunks[-1]["code"] == "stopped"
    seen = site.mock.wait_until_finished(site.mock.last_request(), timeout=5)
    assert seen.outcome == "client_disconnected" and seen.tokens_sent < 1_000, seen


def test_a_new_turn_stops_the_previous_reply_of_the_chat(site: Site) -> None:
    site.mock.script(prompt_contains="machine", token_interval_ms=30)
    first = turn_body("What is machine learning?", chat_id="two-turns", tools=[])
    read_some(site.url, first, chunks=3)
    site.turn("Say hello.", chat_id="two-turns", tools=[])
    old = site.mock.wait_until_finished(site.mock.requests[0], timeout=5)
    assert old.outcome == "client_disconnected", "one reply per chat"


def test_a_system_message_follows_the_servers_policy(site: Site) -> None:
    system = {"id": "s", "role": "system", "parts": [{"type": "text", "text": "Be brief."}]}
    turn = site.turn("Say hello.", tools=[], history=[system])
    assert turn.record.status == 200
    assert site.mock.last_request().system == "Be brief."


def test_with_tokens_every_route_needs_one_and_chats_are_per_client(site: Site) -> None:
    protection = ProtectionSettings(tokens={TOKEN: "alice", OTHER: "bob"})
    server = BackgroundServer(create_app(protection=protection)).start()
    alice = {"Authorization": f"Bearer {TOKEN}"}
    bob = {"Authorization": f"Bearer {OTHER}"}
    try:
        body = turn_body("Say hello.", chat_id="private", tools=[])
        refused = httpx.post(server.url + "/api/chat", json=body)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert httpx.get(server.url + "/api/chat/private/stream").status_code == 401
        assert httpx.get(server.url + "/").status_code == 200, "the page itself is public"
        turn = ui_turn(server.url + "/api/chat", body, headers=alice, timeout=20)
        assert turn.chunks[-1]["type"] == "finish"
        assert httpx.get(server.url + "/api/chat/private/stream", headers=bob).status_code == 204
        assert httpx.get(server.url + "/api/chat/private", headers=bob).json()["messages"] == []
        taken = httpx.post(server.url + "/api/chat", json=body, headers=bob)
        assert_http_error_response(taken, 404, "not_found")
        mine = httpx.get(server.url + "/api/chat/private/stream", headers=alice)
        assert mine.status_code == 200
    finally:
        server.stop()


def assert_http_error_response(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


# --- the LangGraph agent -------------------------------------------------------------------------


def test_the_agent_streams_text(site: Site) -> None:
    turn = site.turn("Say hello.", path="/api/agent", tools=[])
    assert turn.types()[:3] == ["start", "start-step", "text-start"]
    assert turn.text() == "Hello! How can I help you today?"
    assert turn.chunks[-1]["finishReason"] == "stop" and turn.ends_with_done_sentinel()
    assert site.mock.last_request().endpoint == "chat.completions"


def test_the_agent_runs_parallel_tools_with_progress_from_inside_them(site: Site) -> None:
    turn = site.turn("Look up Paris and Tokyo in the city table.", path="/api/agent")
    calls = tool_parts(turn)
    assert [c["input"] for c in calls.values()] == [{"city": "Paris"}, {"city": "Tokyo"}]
    assert [c["result"]["country"] for c in calls.values()] == ["France", "Japan"]
    assert all(json.loads(c["text"]) == c["input"] for c in calls.values())
    progress = turn.of_type("data-tool-progress")
    assert {p["data"]["toolCallId"] for p in progress} == set(calls)
    assert {p["data"]["status"] for p in progress} == {"searching", "found"}
    kinds = turn.types()
    assert kinds.count("start-step") == 2 and kinds.index("tool-output-available") < kinds.index(
        "text-start"
    )
    assert "France" in turn.text()


def test_the_agent_refuses_another_provider(site: Site) -> None:
    turn = site.turn("Say hello.", path="/api/agent", provider="anthropic")
    assert_http_error(turn.record, 422, "invalid_request")
    assert not requests_of(site)


def test_the_agent_reports_a_failing_tool_and_goes_on(site: Site) -> None:
    turn = site.turn("Look up Atlantis in the city table.", path="/api/agent")
    (call,) = tool_parts(turn).values()
    assert call["end"] == "tool-output-error" and "Atlantis" in call["result"]
    assert turn.chunks[-1]["type"] == "finish" and turn.text()
