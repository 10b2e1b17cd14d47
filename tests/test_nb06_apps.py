"""Notebook 06's lesson apps without a proxy: headers, keep-alives, gzip, resumable streams."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware

from lessons.proxy_browser import buffered_pitfall, chat_page, relay, resumable
from lessons.toolkit.nginx import timed_stream
from lessons.toolkit.sse_parser import parse_sse

PROMPT = {"message": "Explain streaming in one paragraph."}


def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_relay_sends_streaming_headers_and_the_reply(mock, serve) -> None:
    url = serve(relay.create_app())
    with httpx.stream("POST", f"{url}/chat/stream", json=PROMPT) as response:
        raw = response.read().decode()
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["cache-control"] == "no-cache"
    events = [json.loads(e.data) for e in parse_sse(raw)]
    assert events[-1] == {"token": "", "done": True}
    assert "".join(e["token"] for e in events) == mock.last_request().reply_text
    assert raw.startswith('data: {"token":')


def test_pitfall_omits_the_header_but_streams_the_same_reply(mock, serve) -> None:
    url = serve(buffered_pitfall.app)
    with httpx.stream("POST", f"{url}/chat/stream", json=PROMPT) as response:
        raw = response.read().decode()
    assert "x-accel-buffering" not in response.headers
    events = [json.loads(e.data) for e in parse_sse(raw)]
    assert "".join(e["token"] for e in events) == mock.last_request().reply_text


def test_relay_pings_while_the_provider_is_silent(mock, serve) -> None:
    from lessons.mock_providers import Fault

    mock.script(fault=Fault.stall(after_tokens=2, seconds=0.6))
    url = serve(relay.create_app(ping_interval_s=0.1))
    result = timed_stream(f"{url}/chat/stream", PROMPT, label="stall")
    assert result.comments >= 2, "no `: ping` during a 0.6 s silence with a 0.1 s interval"
    assert result.terminal == {"token": "", "done": True}


def test_chat_page_is_served(mock, serve) -> None:
    url = serve(chat_page.create_app())
    page = httpx.get(url).text
    assert "AbortController" in page and "getReader" in page and "/chat/stream" in page


def test_starlette_gzip_leaves_event_streams_alone(mock, serve) -> None:
    app: FastAPI = relay.create_app()
    app.add_middleware(GZipMiddleware, minimum_size=10)
    url = serve(app)
    result = timed_stream(
        f"{url}/chat/stream", PROMPT, label="gzip", headers={"Accept-Encoding": "gzip"}
    )
    assert "content-encoding" not in result.headers
    assert result.text == mock.last_request().reply_text


# --- resumable streams (EventSource) ----------------------------------------------------------


def _start(url: str, message: str = PROMPT["message"]) -> dict:
    response = httpx.post(f"{url}/chat/generations", json={"message": message})
    assert response.status_code == 201, response.text
    return response.json()


def _events(url: str, path: str, last_id: str | None = None, limit: int | None = None):
    headers = {"Last-Event-ID": last_id} if last_id is not None else {}
    got = []
    with httpx.stream("GET", f"{url}{path}", headers=headers, timeout=10) as response:
        if response.status_code != 200:
            return response.status_code, got
        assert response.headers["x-accel-buffering"] == "no"
        raw = ""
        for chunk in response.iter_text():
            raw += chunk
            got = [e for e in parse_sse(raw) if e.data]
            if limit is not None and len(got) >= limit:
                break
    return 200, got


def test_resume_after_last_event_id_never_replays_or_regenerates(mock, serve) -> None:
    mock.set_timing(token_interval_ms=5)
    url = serve(resumable.create_app())
    started = _start(url)
    status, first = _events(url, started["events"], limit=3)
    assert status == 200 and len(first) == 3
    status, rest = _events(url, started["events"], last_id=first[-1].id)
    ids = [int(e.id) for e in first + rest]
    assert ids == list(range(1, len(ids) + 1)), "ids must continue with no gap or repeat"
    text = "".join(json.loads(e.data)["text"] for e in first + rest if e.event == "token")
    assert text == mock.last_request().reply_text
    assert rest[-1].event == "done"
    assert len(mock.requests) == 1, "a reconnect must not start a second generation"
    # After the end, a reconnect is told to stop (204), and unknown ids are refused.
    assert _events(url, started["events"], last_id=rest[-1].id)[0] == 204
    assert _events(url, started["events"], last_id="999")[0] == 400
    assert _events(url, "/chat/generations/nope/events")[0] == 404


def test_delete_cancels_the_upstream(mock, serve) -> None:
    mock.set_timing(token_interval_ms=50)
    url = serve(resumable.create_app())
    started = _start(url)
    _wait_for(lambda: mock.requests and mock.requests[-1].tokens_sent >= 2)
    assert httpx.delete(f"{url}/chat/generations/{started['id']}").status_code == 204
    request = mock.last_request()
    mock.wait_until_finished(request, timeout=5)
    assert mock.last_request().outcome == "client_disconnected"
    _status, events = _events(url, started["events"])
    assert events[-1].event == "error" and json.loads(events[-1].data)["code"] == "cancelled"


def test_abandoned_generation_is_cancelled(mock, serve) -> None:
    mock.set_timing(token_interval_ms=50)
    url = serve(resumable.create_app(abandon_after_s=0.3))
    started = _start(url)
    _events(url, started["events"], limit=2)  # read a little, then go away
    mock.wait_until_finished(mock.last_request(), timeout=5)
    assert mock.last_request().outcome == "client_disconnected"


def test_provider_error_before_the_stream_is_an_http_error(mock, serve) -> None:
    from lessons.mock_providers import Fault

    mock.script(fault=Fault.http_error(503))
    url = serve(resumable.create_app())
    response = httpx.post(f"{url}/chat/generations", json=PROMPT)
    assert response.status_code in (502, 503)
    assert set(response.json()["error"]) == {"code", "message", "request_id"}


@pytest.mark.parametrize("body", [{"message": ""}, {"message": "x" * 32_001}, {}])
def test_invalid_bodies_get_422(mock, serve, body) -> None:
    url = serve(resumable.create_app())
    assert httpx.post(f"{url}/chat/generations", json=body).status_code == 422
