"""Notebook 06's lesson apps without a proxy: headers, keep-alives, gzip, resumable generations
(owner only, exact resumption after Last-Event-ID, 204 at the end, 400 for an id never sent,
stop, abandonment); and the notebook's measurements stored for machines without nginx."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware

from lessons.mock_providers import Fault
from lessons.proxy_browser import buffered_pitfall, chat_page, relay, resumable
from lessons.relay_core import ProtectionSettings, RelaySettings
from lessons.toolkit import proxies_and_browsers
from lessons.toolkit.proxies_and_browsers import (
    STORE_ENV,
    LessonServers,
    lesson_servers,
    measured_or_stored,
)
from lessons.toolkit.testkit import (
    StreamRecord,
    assert_http_error,
    assert_incremental,
    assert_one_terminal_event,
    assert_streaming_headers,
    assert_upstream_cancelled,
    classify,
    collect_sync,
)

PROMPT = {"message": "Explain streaming in one paragraph."}
TOKEN_A = "client-a-token-0123456789"
TOKEN_B = "client-b-token-0123456789"
TWO_CLIENTS = ProtectionSettings(tokens={TOKEN_A: "client-a", TOKEN_B: "client-b"})
AUTH_A = {"Authorization": f"Bearer {TOKEN_A}"}
AUTH_B = {"Authorization": f"Bearer {TOKEN_B}"}
# A pace slow enough for a reply to be mid-stream when a test stops or abandons it.
SLOW_TOKENS_MS = 500


@pytest.fixture(scope="module")
def apps() -> Iterator[LessonServers]:
    """One mock and each app once for the module: starting servers per test is most of the time."""
    with lesson_servers() as servers:
        yield servers


@pytest.fixture
def mock(apps: LessonServers) -> Any:
    """This module's mock, with no rules, observations or pace left from the test before."""
    apps.mock.reset()
    return apps.mock


def _resumable(apps: LessonServers, name: str = "resumable", **options: Any) -> str:
    return apps.url(name, lambda: resumable.create_app(**options))


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


# --- the relay, the pitfall and the page ----------------------------------------------------------


def test_relay_streams_with_the_headers_a_proxy_needs(mock, apps) -> None:
    mock.set_timing(token_interval_ms=5)
    record = collect_sync(f"{apps.url('relay', relay.create_app)}/chat/stream", PROMPT)
    assert_streaming_headers(record)  # X-Accel-Buffering: no and Cache-Control: no-cache
    assert classify(assert_one_terminal_event(record)).kind == "done"
    assert record.text() == mock.last_request().reply_text
    assert_incremental(record, mock.last_request(), mock=mock)


def test_pitfall_streams_the_same_reply_without_the_header(mock, apps) -> None:
    mock.set_timing(token_interval_ms=5)
    url = apps.url("pitfall", lambda: buffered_pitfall.app)
    record = collect_sync(f"{url}/chat/stream", PROMPT)
    assert "x-accel-buffering" not in record.headers
    assert record.text() == mock.last_request().reply_text
    assert_incremental(record, mock.last_request(), mock=mock)


def test_relay_pings_while_the_provider_is_silent(mock, apps) -> None:
    mock.script(fault=Fault.stall(after_tokens=2, seconds=0.6))
    url = apps.url("pinging", lambda: relay.create_app(RelaySettings(keepalive_interval_s=0.1)))
    record = collect_sync(f"{url}/chat/stream", PROMPT)
    assert len(record.comments) >= 3, "no `: ping` during a 0.6 s silence with a 0.1 s interval"
    assert {c.text for c in record.comments} == {"ping"}
    assert classify(assert_one_terminal_event(record)).kind == "done"


def test_chat_page_is_public_and_its_stream_is_not(mock, apps) -> None:
    url = apps.url("page", lambda: chat_page.create_app(protection=TWO_CLIENTS))
    page = httpx.get(url)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
    assert all(word in page.text for word in ("AbortController", "getReader", "/chat/stream"))
    refused = collect_sync(f"{url}/chat/stream", PROMPT)
    assert_http_error(refused, 401, "unauthorized")
    assert len(mock.requests) == 0


def _gzip_app(**options: Any) -> FastAPI:
    app = relay.create_app()
    app.add_middleware(GZipMiddleware, minimum_size=10, **options)
    return app


def test_starlette_gzip_leaves_event_streams_alone(mock, apps) -> None:
    url = apps.url("gzip", _gzip_app)
    record = collect_sync(f"{url}/chat/stream", PROMPT, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in record.headers
    assert record.text() == mock.last_request().reply_text


def test_forced_gzip_compresses_and_still_streams(mock, apps) -> None:
    mock.set_timing(token_interval_ms=5)
    url = apps.url("gzip-forced", lambda: _gzip_app(exclude_content_types=()))
    record = collect_sync(f"{url}/chat/stream", PROMPT, headers={"Accept-Encoding": "gzip"})
    assert record.headers["content-encoding"] == "gzip"
    assert record.text() == mock.last_request().reply_text
    assert_incremental(record, mock.last_request(), mock=mock)


# --- resumable generations ------------------------------------------------------------------------


def _start(
    url: str, headers: dict[str, str] | None = None, message: str = PROMPT["message"]
) -> httpx.Response:
    response = httpx.post(f"{url}/chat/generations", json={"message": message}, headers=headers)
    assert response.status_code == 201, response.text
    return response


def _grant(started: httpx.Response) -> dict[str, str]:
    """The grant cookie of a POST's answer, as the browser sends it back."""
    return {"Cookie": started.headers["set-cookie"].split(";", 1)[0]}


def _read(url: str, path: str, last_event_id: str | None = None, **options: Any) -> StreamRecord:
    headers = dict(options.pop("headers", {}))
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    return collect_sync(f"{url}{path}", method="GET", headers=headers, **options)


def test_post_answers_with_the_events_url_and_a_grant_for_that_generation_only(mock, apps) -> None:
    started = _start(_resumable(apps))
    body = started.json()
    assert set(body) == {"id", "events", "request_id"}
    assert len(body["id"]) >= 16, "a generation id must be unguessable"
    path = f"/chat/generations/{body['id']}"
    assert body["events"] == f"{path}/events", "nothing secret belongs in the URL"
    attributes = [part.strip() for part in started.headers["set-cookie"].split(";")]
    assert attributes[0].startswith("relay_grant=")
    assert f"Path={path}" in attributes
    assert {"HttpOnly", "SameSite=Strict"} <= set(attributes)
    assert any(a.startswith("Max-Age=") for a in attributes)


def test_a_reconnect_gets_exactly_the_events_after_its_last_event_id(mock, apps) -> None:
    mock.set_timing(token_interval_ms=5)
    url = _resumable(apps)
    events = _start(url).json()["events"]
    first = _read(url, events, stop_after=3)
    assert [e.id for e in first.events] == ["1", "2", "3"]
    assert first.headers["x-accel-buffering"] == "no"
    rest = _read(url, events, last_event_id="3")
    everything = _read(url, events)  # the whole reply, replayed from the store
    assert first.events + rest.events == everything.events, "a gap or a repeat at the reconnect"
    assert [e.id for e in everything.events] == [str(n) for n in range(1, 97)]
    assert classify(assert_one_terminal_event(rest)).kind == "done"
    assert everything.text() == mock.last_request().reply_text
    for after in ("1", "50", "95"):
        resumed = _read(url, events, last_event_id=after)
        assert resumed.events == everything.events[int(after) :]
    assert len(mock.requests) == 1, "a reconnect must never start a second generation"


def test_a_finished_generation_read_to_its_end_answers_204(mock, apps) -> None:
    url = _resumable(apps)
    events = _start(url).json()["events"]
    everything = _read(url, events)
    last_id = everything.events[-1].id
    assert last_id is not None
    ended = httpx.get(f"{url}{events}", headers={"Last-Event-ID": last_id})
    # 204 is how a server tells EventSource to stop reconnecting.
    assert ended.status_code == 204 and ended.content == b""
    assert _read(url, events).events == everything.events, "a new reader still gets it all"


@pytest.mark.parametrize(
    "last_event_id",
    ["abc", "-1", "1.5", "0x3", "999", "9" * 12, "\N{SUPERSCRIPT TWO}"],
    ids=["letters", "negative", "decimal", "hex", "past-the-end", "huge", "unicode-digit"],
)
def test_an_id_the_stream_never_sent_gets_400(mock, apps, last_event_id: str) -> None:
    url = _resumable(apps)
    events = _start(url, message="Say hello.").json()["events"]
    _read(url, events)  # finished: "999" is past its end
    response = httpx.get(f"{url}{events}", headers={"Last-Event-ID": last_event_id.encode()})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_last_event_id"
    assert "9" * 12 not in response.text, "a refusal echoes nothing of the request"


def test_an_unknown_generation_gets_404(mock, apps) -> None:
    url = _resumable(apps)
    for method, path in [
        ("GET", "/chat/generations/not-a-generation/events"),
        ("DELETE", "/chat/generations/not-a-generation"),
    ]:
        response = httpx.request(method, f"{url}{path}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_only_the_owner_reads_or_stops_a_generation(mock, apps) -> None:
    mock.set_timing(token_interval_ms=5)
    url = _resumable(apps, "two-clients", protection=TWO_CLIENTS)
    started_a = _start(url, AUTH_A)
    started_b = _start(url, AUTH_B, message="Say hello.")
    a = started_a.json()
    events_a, stop_a = f"{url}{a['events']}", f"{url}/chat/generations/{a['id']}"
    # Another client's token: exactly the answer for a generation that does not exist.
    for response in (httpx.get(events_a, headers=AUTH_B), httpx.delete(stop_a, headers=AUTH_B)):
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    # Another client's grant covers only its own generation's URLs: here it is no credential.
    assert httpx.get(events_a, headers=_grant(started_b)).status_code == 401
    assert httpx.get(events_a).status_code == 401
    # The owner's grant alone (what EventSource sends) reads it, but starts nothing new.
    record = _read(url, a["events"], headers=_grant(started_a))
    assert classify(assert_one_terminal_event(record)).kind == "done"
    assert record.text() == mock.requests[0].reply_text, "another client's refusal stopped it"
    refused = httpx.post(f"{url}/chat/generations", json=PROMPT, headers=_grant(started_a))
    assert refused.status_code == 401
    assert len(mock.requests) == 2


def _stop_mid_reply(mock, url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    started = _start(url, headers).json()
    _wait_for(lambda: bool(mock.requests) and mock.requests[-1].tokens_sent >= 1)
    stopped = httpx.delete(f"{url}/chat/generations/{started['id']}", headers=headers)
    assert stopped.status_code == 204
    return started


def test_delete_stops_the_generation_and_its_readers(mock, apps) -> None:
    mock.set_timing(token_interval_ms=SLOW_TOKENS_MS)
    url = _resumable(apps)
    started = _stop_mid_reply(mock, url)
    assert_upstream_cancelled(mock, timeout=3)
    record = _read(url, started["events"])
    end = classify(assert_one_terminal_event(record))
    assert (end.kind, end.code) == ("error", "stopped")
    usage = apps.app("resumable").state.usage
    _wait_for(lambda: usage.find(started["request_id"]) is not None)
    assert usage.find(started["request_id"]).outcome == "stopped"


def test_delete_stops_the_generation_while_tokens_flow(mock, apps) -> None:
    mock.set_timing(token_interval_ms=10)
    _stop_mid_reply(mock, _resumable(apps))
    assert_upstream_cancelled(mock, timeout=2)


def _leave_after_two_events(url: str) -> str:
    started = _start(url).json()
    _read(url, started["events"], stop_after=2)  # read a little, then go away
    return str(started["request_id"])


def test_a_generation_nobody_reads_is_abandoned(mock, apps) -> None:
    mock.set_timing(token_interval_ms=SLOW_TOKENS_MS)
    request_id = _leave_after_two_events(_resumable(apps, "abandoning", abandon_after_s=0.3))
    assert_upstream_cancelled(mock, timeout=3)
    usage = apps.app("abandoning").state.usage
    _wait_for(lambda: usage.find(request_id) is not None)
    assert usage.find(request_id).outcome == "abandoned"


def test_a_generation_nobody_reads_is_abandoned_while_tokens_flow(mock, apps) -> None:
    mock.set_timing(token_interval_ms=10)
    _leave_after_two_events(_resumable(apps, "abandoning", abandon_after_s=0.3))
    assert_upstream_cancelled(mock, timeout=2)


def test_provider_error_before_the_stream_is_an_http_error(mock, apps) -> None:
    mock.script(fault=Fault.http_error(503))
    url = _resumable(apps)
    generations = apps.app("resumable").state.generations
    before = len(generations)
    response = httpx.post(f"{url}/chat/generations", json=PROMPT)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_overloaded"
    assert "set-cookie" not in response.headers, "no grant for a generation that never began"
    assert len(generations) == before


@pytest.mark.parametrize(
    "body",
    [{"message": ""}, {"message": "   "}, {"message": "x" * 32_001}, {}, {**PROMPT, "x": 1}],
    ids=["empty", "blank", "too-long", "missing", "unknown-field"],
)
def test_invalid_bodies_get_422(mock, apps, body: dict[str, Any]) -> None:
    response = httpx.post(f"{_resumable(apps)}/chat/generations", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert len(mock.requests) == 0


# --- measurements stored for machines without nginx or Chromium -----------------------------------

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_proxies_and_browsers.ipynb"


def _notebook_measurements() -> list[str]:
    source = "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells)
    return re.findall(r'measured_or_stored\(\s*"(\w+)"', source)


def test_the_notebook_measures_through_measured_or_stored() -> None:
    assert len(_notebook_measurements()) >= 6


@pytest.mark.parametrize("name", _notebook_measurements())
def test_every_measurement_of_the_notebook_has_a_labelled_stored_copy(name: str) -> None:
    def must_not_run() -> dict[str, Any]:
        raise AssertionError("a stored measurement must be loaded, not measured")

    stored = measured_or_stored(name, must_not_run, available=False)
    assert stored.stored and stored.values
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", stored.when)
    assert "nginx" in stored.where and "CPU cores" in stored.where
    assert "STORED" in stored.describe() and stored.when in stored.describe()


def test_a_fresh_measurement_is_stored_only_on_request(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stored_file = tmp_path / "measurements.json"
    monkeypatch.setattr(proxies_and_browsers, "MEASUREMENTS_FILE", stored_file)
    monkeypatch.delenv(STORE_ENV, raising=False)
    fresh = measured_or_stored("probe", lambda: {"value": 1}, available=True)
    assert not fresh.stored and "just now" in fresh.describe()
    assert not stored_file.exists(), "a test or notebook run must leave the stored copy alone"
    monkeypatch.setenv(STORE_ENV, "1")
    measured_or_stored("probe", lambda: {"value": 2}, available=True)
    again = measured_or_stored("probe", lambda: {"value": 3}, available=False)
    assert again.stored and again.values == {"value": 2}
