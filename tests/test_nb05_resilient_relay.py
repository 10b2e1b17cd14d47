"""The resilient relay's deadlines, keep-alives, retries, usage accounting, drain and protection."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn

from lessons.mock_providers import Fault
from lessons.resilient_relay.drain import DrainingServer
from lessons.resilient_relay.protected import create_app as create_protected
from lessons.resilient_relay.protection import ProtectionSettings, client_for
from lessons.resilient_relay.relay import RelaySettings, create_app
from lessons.toolkit.sse_parser import SSEComment, SSEEvent, parse_sse

FAST = RelaySettings(
    open_timeout_s=0.5, first_token_timeout_s=0.6, idle_timeout_s=0.3, keepalive_interval_s=0.1
)
PROMPT = "What is machine learning?"


def post(url: str, body: dict[str, Any], **headers: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(f"{url}/chat/stream", json=body, headers=headers, timeout=10)
    return response, time.monotonic() - started


def events(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in parse_sse(response.content) if isinstance(e, SSEEvent)]


def pings(response: httpx.Response) -> int:
    return sum(isinstance(e, SSEComment) for e in parse_sse(response.content, True))


# --- deadlines -----------------------------------------------------------------------------------


def test_slow_first_token_gets_keepalives_then_the_reply(mock: Any, serve: Any) -> None:
    url = serve(create_app(RelaySettings(first_token_timeout_s=3, keepalive_interval_s=0.1)))
    mock.script(ttft_ms=500)
    response, _ = post(url, {"message": PROMPT})
    assert response.status_code == 200
    assert b": ping\n\n" in response.content
    assert pings(response) >= 2
    assert events(response)[-1] == {"token": "", "done": True}


def test_first_token_deadline_ends_with_one_timeout_event(mock: Any, serve: Any) -> None:
    url = serve(create_app(FAST))
    mock.script(ttft_ms=3000)
    response, elapsed = post(url, {"message": PROMPT})
    assert response.status_code == 200  # the provider had answered 200: the stream had begun
    assert pings(response) >= 2
    [terminal] = events(response)
    assert terminal["code"] == "provider_timeout" and terminal["done"] is True
    assert elapsed < 2.5
    seen = mock.wait_until_finished(mock.last_request(), timeout=2)
    assert seen.outcome == "client_disconnected" and seen.tokens_sent == 0


def test_silence_deadline_cuts_a_stall_and_the_upstream(mock: Any, serve: Any) -> None:
    url = serve(create_app(FAST))
    mock.script(Fault.stall(4, seconds=2))
    response, elapsed = post(url, {"message": PROMPT})
    received = events(response)
    assert [e.get("code") for e in received[4:]] == ["provider_timeout"]
    assert elapsed < 1.5
    seen = mock.wait_until_finished(mock.last_request(), timeout=2)
    assert seen.outcome == "client_disconnected"
    assert seen.finished_at is not None and seen.finished_at - seen.started_at < 1.5


def test_no_response_headers_in_time_is_a_504(mock: Any, serve: Any) -> None:
    url = serve(create_app(FAST))
    mock.script(Fault.stall(0, seconds=2, before_headers=True))
    response, elapsed = post(url, {"message": PROMPT})
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "provider_timeout"
    assert elapsed < 1.5


# --- retries ------------------------------------------------------------------------------------


def test_sdk_retries_a_429_before_the_first_token(mock: Any, serve: Any) -> None:
    url = serve(create_app(RelaySettings(max_retries=2)))
    mock.script(Fault.http_error(429, retry_after=0.3, should_retry=True), times=1)
    response, elapsed = post(url, {"message": PROMPT})
    assert response.status_code == 200
    assert events(response)[-1]["done"] is True
    assert [r.status for r in mock.requests] == [429, 200]
    assert elapsed >= 0.3  # the SDK honoured the provider's retry-after


def test_x_should_retry_false_reaches_the_client_at_once(mock: Any, serve: Any) -> None:
    url = serve(create_app(RelaySettings(max_retries=2)))
    mock.script(Fault.http_error(429, retry_after=7), times=None)
    response, elapsed = post(url, {"message": PROMPT})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert len(mock.requests) == 1 and elapsed < 1.0


def test_nothing_is_retried_once_text_has_been_sent(mock: Any, serve: Any) -> None:
    url = serve(create_app(RelaySettings(max_retries=2)))
    mock.script(Fault.error_event(3), times=None)
    response, _ = post(url, {"message": PROMPT})
    received = events(response)
    assert len(received) == 4 and "error" in received[-1]
    assert len(mock.requests) == 1  # the client never gets the first three tokens twice


# --- usage --------------------------------------------------------------------------------------


def test_usage_comes_from_the_provider_when_the_reply_completes(mock: Any, serve: Any) -> None:
    app = create_app(FAST)
    url = serve(app)
    response, _ = post(url, {"message": PROMPT})
    request_id = response.headers["x-request-id"]
    record = app.state.usage.find(request_id)
    seen = mock.last_request()
    assert record.outcome == "completed" and not record.estimated
    assert record.output_tokens == seen.tokens_sent
    assert record.input_tokens == seen.input_tokens


def test_usage_is_estimated_for_a_stream_the_client_left(mock: Any, serve: Any) -> None:
    app = create_app(FAST)
    url = serve(app)
    mock.script(token_interval_ms=30)
    received = 0
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", f"{url}/chat/stream", json={"message": PROMPT}) as response,
    ):
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if line.startswith("data:"):
                received += 1
                if received == 5:
                    break
    seen = mock.wait_until_finished(mock.last_request(), timeout=2)
    assert seen.outcome == "client_disconnected"
    deadline = time.monotonic() + 2
    while app.state.usage.find(request_id) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    record = app.state.usage.find(request_id)
    assert record is not None and record.estimated
    assert record.outcome == "client_disconnected"
    # Counted from what was relayed: at least what the client read, at most what the mock sent.
    assert received <= record.output_tokens <= seen.tokens_sent < seen.tokens_planned
    assert len(app.state.streams) == 0


# --- shutdown ------------------------------------------------------------------------------------


class ThreadedServer:
    """uvicorn (or the draining subclass) in a thread, stopped as SIGTERM would."""

    def __init__(self, server: uvicorn.Server) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(10)


def _stop_mid_stream(url: str, server: uvicorn.Server) -> tuple[list[SSEEvent], float]:
    """Read three tokens, ask the server to stop, read whatever else arrives."""
    raw = bytearray()
    stop_at = 0.0
    try:
        with (
            httpx.Client(timeout=5) as client,
            client.stream("POST", f"{url}/chat/stream", json={"message": PROMPT}) as response,
        ):
            for chunk in response.iter_raw():
                raw += chunk
                if not stop_at and raw.count(b"data:") >= 3:
                    stop_at = time.monotonic()
                    server.should_exit = True
    except httpx.HTTPError:
        pass  # a cut stream is one of the outcomes being shown
    return [e for e in parse_sse(bytes(raw)) if isinstance(e, SSEEvent)], stop_at


def test_draining_server_ends_streams_with_a_terminal_event(mock: Any) -> None:
    mock.script(token_interval_ms=40)
    app = create_app(FAST)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = DrainingServer(config, drain_timeout_s=2)
    with ThreadedServer(server) as url:
        received, stop_at = _stop_mid_stream(url, server)
        server.should_exit = True
        seen = mock.wait_until_finished(mock.last_request(), timeout=3)
    last = json.loads(received[-1].data)
    assert last["code"] == "server_shutting_down" and last["done"] is True
    assert sum("error" in json.loads(e.data) for e in received) == 1
    assert server.drained == 1
    assert seen.outcome == "client_disconnected"
    assert seen.finished_at is not None and seen.finished_at - stop_at < 1.0


def test_plain_uvicorn_cuts_streams_without_a_terminal_event(mock: Any) -> None:
    mock.script(token_interval_ms=40)
    config = uvicorn.Config(
        create_app(FAST),
        host="127.0.0.1",
        port=0,
        log_level="critical",
        timeout_graceful_shutdown=0.3,
    )
    server = uvicorn.Server(config)
    with ThreadedServer(server) as url:
        received, _ = _stop_mid_stream(url, server)
    kinds = [json.loads(e.data) for e in received]
    assert not any(k.get("done") for k in kinds), "uvicorn alone sends no terminal event"


# --- protection ---------------------------------------------------------------------------------

TOKENS = {"alpha-secret": "alpha", "beta-secret": "beta"}


def protected(serve: Any, **options: Any) -> str:
    settings = {"tokens": TOKENS, "allowed_origins": ("https://chat.example",), **options}
    return serve(create_protected(ProtectionSettings(**settings), FAST))


def test_bearer_token_decides_the_client() -> None:
    assert client_for("Bearer alpha-secret", TOKENS) == "alpha"
    assert client_for("bearer beta-secret", TOKENS) == "beta"
    assert client_for("Bearer nope", TOKENS) is None
    assert client_for("Basic alpha-secret", TOKENS) is None
    assert client_for(None, TOKENS) is None
    assert client_for("Bearer alpha-secret", {}) is None


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "alpha-secret"])
def test_no_valid_token_no_provider_call(mock: Any, serve: Any, authorization: str | None) -> None:
    url = protected(serve)
    headers = {"Authorization": authorization} if authorization else {}
    response, _ = post(url, {"message": PROMPT}, **headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"
    assert mock.requests == []


def test_request_rate_limit_is_a_429_with_retry_after(mock: Any, serve: Any) -> None:
    url = protected(serve, burst=2, requests_per_minute=6)
    auth = {"Authorization": "Bearer alpha-secret"}
    statuses = [post(url, {"message": PROMPT}, **auth)[0] for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[2].json()["error"]["code"] == "client_rate_limited"
    assert 1 <= int(statuses[2].headers["retry-after"]) <= 10
    assert len(mock.requests) == 2
    # Another client has a bucket of its own.
    assert post(url, {"message": PROMPT}, Authorization="Bearer beta-secret")[0].status_code == 200


def test_concurrent_streams_are_limited_per_client(mock: Any, serve: Any) -> None:
    url = protected(serve, max_concurrent_streams=1)
    mock.script(token_interval_ms=30, times=1)
    auth = {"Authorization": "Bearer alpha-secret"}
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", f"{url}/chat/stream", json={"message": PROMPT}, headers=auth) as r,
    ):
        assert r.status_code == 200
        second, _ = post(url, {"message": PROMPT}, **auth)
        assert second.status_code == 429
        assert second.json()["error"]["code"] == "too_many_streams"
        assert second.headers["retry-after"] == "1"
        other, _ = post(url, {"message": PROMPT}, Authorization="Bearer beta-secret")
        assert other.status_code == 200
    # The first client left mid-stream: its slot comes back.
    mock.wait_until_finished(mock.requests[0], timeout=2)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        again, _ = post(url, {"message": PROMPT}, **auth)
        if again.status_code == 200:
            break
        time.sleep(0.05)
    assert again.status_code == 200


def test_max_tokens_is_capped_and_forwarded(mock: Any, serve: Any) -> None:
    url = protected(serve)
    auth = {"Authorization": "Bearer alpha-secret"}
    too_many, _ = post(url, {"message": PROMPT, "max_tokens": 100_000}, **auth)
    assert too_many.status_code == 422
    assert "max_tokens" in too_many.text
    assert mock.requests == []
    ok, _ = post(url, {"message": PROMPT, "max_tokens": 64}, **auth)
    assert ok.status_code == 200
    assert mock.last_request().body["max_tokens"] == 64


def test_cors_allows_only_known_origins(serve: Any) -> None:
    url = protected(serve)
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    good = httpx.options(
        f"{url}/chat/stream", headers={"Origin": "https://chat.example", **preflight}
    )
    bad = httpx.options(
        f"{url}/chat/stream", headers={"Origin": "https://evil.example", **preflight}
    )
    assert good.status_code == 200
    assert good.headers["access-control-allow-origin"] == "https://chat.example"
    assert bad.status_code == 400
    assert "access-control-allow-origin" not in bad.headers


def test_unconfigured_protection_refuses_everyone(mock: Any, serve: Any) -> None:
    url = serve(create_protected(ProtectionSettings(), FAST))
    response, _ = post(url, {"message": PROMPT}, Authorization="Bearer anything")
    assert response.status_code == 401
    assert mock.requests == []
