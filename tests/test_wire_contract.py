"""docs/wire-contract.md and the code say the same thing: every route, shape and error code."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

from lessons.mock_providers import Fault
from lessons.relay_core import ErrorCode, read_event
from lessons.relay_core.errors import MESSAGES, STATUSES
from lessons.toolkit.testkit import (
    assert_error_event,
    assert_one_terminal_event,
    assert_streaming_headers,
    collect_sync,
)

DOC = (Path(__file__).resolve().parents[1] / "docs" / "wire-contract.md").read_text()


def table(heading: str) -> list[list[str]]:
    """The rows of the first table after `heading`, cells stripped of backticks."""
    lines = DOC.split(heading, 1)[1].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows: list[str] = []
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    # Split on " | " only: a cell may hold a "\|" or a "|" inside backticks.
    return [
        [cell.strip().replace("`", "") for cell in re.split(r"(?<!\\) \| ", row.strip("| "))]
        for row in rows[2:]
    ]


def documented_routes() -> dict[tuple[str, str], tuple[list[str], str]]:
    routes = {}
    for route, apps, _body, shape in table("## 4. Routes"):
        method, path = route.split(" ", 1)
        routes[(method, path)] = ([a.strip() for a in apps.split(",")], shape)
    return routes


def test_every_error_code_is_documented_with_its_status() -> None:
    rows = {code: status for code, status, _ in table("## 2. Errors")}
    assert set(rows) == {code.value for code in ErrorCode}
    for code in ErrorCode:
        documented = rows[code.value]
        if documented != "(event only)":
            assert int(documented) == STATUSES[code], code
        assert MESSAGES[code]


def test_every_route_the_apps_serve_is_documented_and_every_documented_one_exists() -> None:
    served: set[tuple[str, str, str]] = set()
    documented = documented_routes()
    apps = {app for apps_, _ in documented.values() for app in apps_ if app != "every app"}
    for module_name in apps:
        # The OpenAPI schema lists every route the app serves (routers are included lazily).
        paths = importlib.import_module(module_name).app.openapi()["paths"]
        for path, operations in paths.items():
            served.update((method.upper(), path, module_name) for method in operations)
    for (method, path), (app_names, _shape) in documented.items():
        for name in app_names:
            if name == "every app":
                continue
            assert (method, path, name) in served, f"{method} {path} is not served by {name}"
    undocumented = {(m, p) for m, p, _ in served} - set(documented)
    assert not undocumented, f"routes missing from docs/wire-contract.md: {undocumented}"


HELLO = {"message": "Say hello."}
STREAMS = [
    ("lessons.sse_basics.app", "/chat/stream", {"message": "Say hello."}, "TokenEvents"),
    ("lessons.sse_basics.app", "/chat/stream-meta", {"message": "Say hello."}, "MetaEvents"),
    ("lessons.sse_basics.app", "/chat/events", {"message": "Say hello."}, "NamedEvents"),
    ("lessons.two_providers.app", "/anthropic/stream", {"message": "Say hello."}, "TokenEvents"),
    ("lessons.two_providers.app", "/responses/stream", {"message": "Say hello."}, "NamedEvents"),
    ("lessons.two_providers.app", "/relay/stream", {"provider": "anthropic", **HELLO},
     "NamedEvents"),
    ("lessons.chain_streaming.app", "/langchain/stream", {"message": "Say hello."}, "TokenEvents"),
    ("lessons.chain_streaming.app", "/chain/stream", {"message": "Say hello."}, "NamedEvents"),
    ("lessons.chain_streaming.app", "/chain/events", {"message": "Say hello."}, "NamedEvents"),
]  # fmt: skip


def check_shape(shape: str, record: Any) -> None:
    events = record.events
    if shape in ("TokenEvents", "MetaEvents"):
        assert all(e.event == "message" and not e.id for e in events), "unnamed, without ids"
        key = "done" if shape == "TokenEvents" else "event"
        assert all(key in data for data in record.data()), f"{shape} events all carry {key!r}"
    else:
        assert [e.id for e in events] == [str(n) for n in range(1, len(events) + 1)]
        assert events[0].event == "start"
        assert {e.event for e in events} <= {
            "start",
            "token",
            "tool_call",
            "step",
            "usage",
            "done",
            "error",
        }


@pytest.mark.parametrize(("module", "route", "body", "shape"), STREAMS, ids=lambda v: str(v))
def test_each_route_streams_in_its_documented_shape(
    mock, serve, module, route, body, shape
) -> None:
    assert documented_routes()[("POST", route)][1].startswith(shape)
    url = serve(importlib.import_module(module).create_app())
    record = collect_sync(f"{url}{route}", body, timeout=20)
    assert_streaming_headers(record)
    assert re.fullmatch(r"req_[0-9a-f]{32}", record.headers["x-request-id"])
    assert read_event(record.events[-1].event, record.events[-1].data).kind == "done"
    assert_one_terminal_event(record)
    assert record.text() == "Hello! How can I help you today?"
    check_shape(shape, record)
    mock.script(fault=Fault.error_event(2))
    failed = collect_sync(f"{url}{route}", body, timeout=20)
    # OpenAI sends its overload mid-stream as a plain server_error: a provider_error here.
    assert_error_event(failed)
    check_shape(shape, failed)


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        (None, '{"token":"a","done":false}', "token"),
        (None, '{"token":"","done":true}', "done"),
        (None, '{"error":"m","code":"c","request_id":"r","done":true}', "error"),
        (None, '{"event":"token","token":"a"}', "token"),
        (None, '{"event":"done","tokens":1}', "done"),
        (None, '{"event":"error","message":"m","code":"c"}', "error"),
        ("token", '{"text":"a"}', "token"),
        ("done", '{"finish_reason":"stop"}', "done"),
        ("error", '{"code":"c","message":"m","request_id":"r"}', "error"),
        ("usage", '{"input_tokens":1}', "other"),
        ("start", '{"provider":"openai"}', "start"),
        (None, '{"type":"text-delta","id":"t","delta":"a"}', "token"),
        (None, '{"type":"finish","finishReason":"stop"}', "done"),
        (None, '{"type":"error","errorText":"m"}', "error"),
        (None, "[DONE]", "other"),
    ],
)  # fmt: skip
def test_one_classifier_reads_every_shape(name: str | None, data: str, kind: str) -> None:
    event = read_event(name, data)
    assert event.kind == kind
    if kind == "token":
        assert event.text == "a"
    if kind == "error":
        assert event.message == "m"
