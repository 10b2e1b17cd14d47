"""Keep-alive comments on notebook 01's routes: the core's watchdog writes `: ping` whenever the
client has had nothing for `keepalive_interval_s`, while the model is slow to start or stalls.

(The watchdog itself, its deadlines and its ping timing, is tested in tests/test_core_watchdog.py
and tests/test_core_stream.py; this file checks what a client of the lesson's routes receives.)
"""

from __future__ import annotations

from typing import Any

from lessons.mock_providers import Fault
from lessons.relay_core import RelaySettings
from lessons.sse_basics.app import create_app
from lessons.toolkit.sse_parser import SSEComment
from lessons.toolkit.testkit import StreamRecord, assert_one_terminal_event, classify, collect_sync

PROMPT = {"message": "Say hello."}
INTERVAL_S = 0.05


def wire(record: StreamRecord) -> list[str]:
    """What arrived, in order: "ping" for a comment, else the event's kind."""
    return [
        "ping" if isinstance(item, SSEComment) else classify(item).kind for item in record.items
    ]


def patient_app() -> Any:
    return create_app(RelaySettings(keepalive_interval_s=INTERVAL_S))


def test_events_route_pings_while_the_model_is_slow_to_start(mock: Any, serve: Any) -> None:
    mock.script(prompt_contains="Say hello.", ttft_ms=400)
    record = collect_sync(serve(patient_app()) + "/chat/events", PROMPT)
    assert_one_terminal_event(record)
    seen = wire(record)
    first_token = seen.index("token")
    # The provider answered at once (so `start` is sent), then 400 ms of silence before the
    # first token: filled with pings, one per interval, and nothing but pings.
    assert seen[0] == "start"
    assert set(seen[1:first_token]) == {"ping"}
    assert seen[1:first_token].count("ping") >= 4, seen
    # The tokens then come back to back: no ping among them.
    assert "ping" not in seen[first_token:], seen
    assert {c.text for c in record.comments} == {"ping"}
    assert record.raw.count(b": ping\n\n") == len(record.comments)


def test_token_route_pings_before_its_first_event(mock: Any, serve: Any) -> None:
    # /chat/stream has no start event: the headers go out when the provider answers, and the
    # pings are the only bytes until the first token.
    mock.script(prompt_contains="Say hello.", ttft_ms=300)
    record = collect_sync(serve(patient_app()) + "/chat/stream", PROMPT)
    seen = wire(record)
    assert seen[: seen.index("token")].count("ping") >= 3, seen
    assert set(seen[: seen.index("token")]) == {"ping"}
    assert record.text() == "Hello! How can I help you today?"


def test_a_stall_mid_reply_is_filled_with_pings(mock: Any, serve: Any) -> None:
    mock.script(fault=Fault.stall(after_tokens=3, seconds=0.3), times=1)
    record = collect_sync(serve(patient_app()) + "/chat/events", PROMPT)
    seen = wire(record)
    tokens_before = [i for i, kind in enumerate(seen) if kind == "token"][:3]
    after_third = seen[tokens_before[-1] + 1 :]
    assert after_third[: after_third.index("token")].count("ping") >= 3, seen
    assert seen[-1] == "done" and record.text() == "Hello! How can I help you today?"


def test_no_ping_when_the_reply_flows_faster_than_the_interval(mock: Any, serve: Any) -> None:
    mock.set_timing(ttft_ms=0, token_interval_ms=5)
    record = collect_sync(serve(patient_app()) + "/chat/events", PROMPT)
    assert record.comments == [], wire(record)


def test_the_default_interval_sends_nothing_during_a_short_wait(mock: Any, serve: Any) -> None:
    # 5 s by default: a wait of a few hundred milliseconds needs no keep-alive.
    mock.script(prompt_contains="Say hello.", ttft_ms=300)
    record = collect_sync(serve(create_app()) + "/chat/events", PROMPT)
    assert record.comments == []
    assert RelaySettings().keepalive_interval_s == 5.0
