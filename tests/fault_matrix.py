"""The fault matrix: every lesson relay crossed with every fault, judged on the wire and the mock.

`run_case` injects one fault, drives one relay as a client would, and returns the names of the
checks that failed. The same code asserts that every lesson relay passes every check (the
`test_fault_matrix_*.py` files, one per pair of notebooks so that pytest-xdist spreads them), and
that each check catches the pitfall app built to break it (`test_nb05_fault_matrix.py`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from lessons.mock_providers import (
    ANTHROPIC_ORGANIZATION,
    OPENAI_ORGANIZATION,
    OPENAI_PROJECT,
    Fault,
)
from lessons.relay_core import BudgetSettings, ProtectionSettings, RelaySettings, read_event
from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.providers import MOCK_ANTHROPIC_KEY, MOCK_OPENAI_KEY
from lessons.toolkit.sse_parser import SSEEvent, parse_sse

# --- the relays ---------------------------------------------------------------------------------

# Short limits, so that a stall or a frozen reader takes well under a second.
FAST = RelaySettings(
    open_timeout_s=1.5,
    first_token_timeout_s=0.8,
    idle_timeout_s=0.3,
    total_timeout_s=30.0,
    keepalive_interval_s=0.2,
    send_timeout_s=0.5,
    close_timeout_s=1.0,
)
TOKEN = "matrix-client-token-0123456789"
MAX_STREAMS = 3
PROTECTION = ProtectionSettings(
    tokens={TOKEN: "matrix"},
    budgets=BudgetSettings(
        max_concurrent_streams=MAX_STREAMS, requests_per_minute=60_000, burst=10_000
    ),
)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# A generation nobody reads any more is cancelled after this long (resumable relays).
ABANDON_AFTER_S = 0.4

PROMPT = "What is machine learning?"
MESSAGE = {"message": PROMPT}


def lesson_app(module: Any) -> Any:
    """Every lesson app takes (settings, protection): the house style of create_relay_app."""
    if module.__name__.endswith("resumable"):
        return module.create_app(FAST, PROTECTION, abandon_after_s=ABANDON_AFTER_S)
    return module.create_app(FAST, PROTECTION)


@dataclass(frozen=True)
class RelaySpec:
    """How to start a relay and talk to it."""

    name: str
    module: str
    route: str
    body: dict[str, Any]
    # Lesson relays are built with lesson_app; a pitfall module's `app` is used as it is.
    lesson: bool = True
    # The relay's own limit on silence between tokens, if it has one.
    idle_limit_s: float | None = FAST.idle_timeout_s
    # A resumable relay: POST starts a generation, GET `events` streams it.
    generation: bool = False

    def load(self) -> Any:
        module = importlib.import_module(self.module)
        return lesson_app(module) if self.lesson else module.app

    @property
    def leave_bound_s(self) -> float:
        """How soon after its reader leaves the upstream must be closed: at once, or for a
        generation (which outlives its readers by design) once it is abandoned."""
        return ABANDON_AFTER_S + 1.0 if self.generation else 0.5


RELAYS = [
    RelaySpec("nb01-chat-stream", "lessons.sse_basics.app", "/chat/stream", MESSAGE),
    RelaySpec("nb01-stream-meta", "lessons.sse_basics.app", "/chat/stream-meta", MESSAGE),
    RelaySpec("nb01-chat-events", "lessons.sse_basics.app", "/chat/events", MESSAGE),
    RelaySpec("nb02-anthropic", "lessons.two_providers.app", "/anthropic/stream", MESSAGE),
    RelaySpec("nb02-responses", "lessons.two_providers.app", "/responses/stream", MESSAGE),
    RelaySpec(
        "nb02-relay-openai",
        "lessons.two_providers.app",
        "/relay/stream",
        {"provider": "openai", **MESSAGE},
    ),
    RelaySpec(
        "nb02-relay-anthropic",
        "lessons.two_providers.app",
        "/relay/stream",
        {"provider": "anthropic", **MESSAGE},
    ),
    RelaySpec("nb03-langchain", "lessons.chain_streaming.app", "/langchain/stream", MESSAGE),
    RelaySpec("nb03-chain-stream", "lessons.chain_streaming.app", "/chain/stream", MESSAGE),
    RelaySpec("nb03-chain-events", "lessons.chain_streaming.app", "/chain/events", MESSAGE),
    RelaySpec("nb04-chat-app", "lessons.testing_streams.chat_app", "/chat/stream", MESSAGE),
    RelaySpec("nb05-resilient", "lessons.resilient_relay.relay", "/chat/stream", MESSAGE),
    RelaySpec("nb05-protected", "lessons.resilient_relay.protected", "/chat/stream", MESSAGE),
    RelaySpec("nb06-relay", "lessons.proxy_browser.relay", "/chat/stream", MESSAGE),
    RelaySpec("nb09-fast", "lessons.relay_costs.app", "/chat/stream", MESSAGE),
    RelaySpec(
        "nb06-resumable",
        "lessons.proxy_browser.resumable",
        "/chat/generations",
        MESSAGE,
        generation=True,
    ),
]
RELAYS_BY_NAME = {spec.name: spec for spec in RELAYS}


def pitfall(name: str, module: str, route: str = "/chat/stream", **options: Any) -> RelaySpec:
    options.setdefault("idle_limit_s", None)
    return RelaySpec(name, module, route, MESSAGE, lesson=False, **options)


# --- the faults and the checks ------------------------------------------------------------------

STALL_S = 2.0
DISCONNECT_AFTER_TOKENS = 3
TOKEN_INTERVAL_MS = 25  # paces the disconnect case: about 2 s for the whole reply
PRE_STREAM = {"http_429": 429, "http_500": 500, "http_529": 529}
FAULTS = [
    *PRE_STREAM,
    "error_event",
    "drop",
    "end_early",
    "stall",
    "leave_during_open",
    "leave_before_first_token",
    "client_disconnect",
    "frozen_reader",
    "invalid_input",
    "oversized_body",
    "unauthenticated",
    "invalid_token",
    "budget_exceeded",
]
# Heavier cases (megabytes through a frozen socket; streams held open concurrently) run for
# every relay only in the slow suite, and for these relays in every run.
HEAVY_FAULTS = {"frozen_reader", "budget_exceeded"}
HEAVY_EVERY_RUN = {"nb01-chat-stream", "nb06-resumable"}

CHECKS = (
    "bounded",  # the exchange ends within its bound
    "http_error_json",  # a failure before the stream is a 4xx/5xx with the contract's JSON body
    "one_terminal",  # a stream has exactly one terminal event, last
    "truncation_reported",  # a stream that ended without its end marker ends with an error
    "no_secrets",  # no byte sent carries exception text, provider ids, keys or paths
    "upstream_cancelled",  # the provider stopped generating when the client (or relay) left
    "leave_during_open",  # a client gone before the provider answered: its call is cancelled
    "leave_before_first_token",  # a client gone before token one: the upstream closed at once
    "frozen_reader",  # a client that stops reading is given up on, not waited for
    "validation",  # invalid input: 422, the contract's body, nothing echoed, no provider call
    "body_limit",  # an oversized body is refused before it is read
    "authentication",  # no token or a wrong one: 401, no provider call
    "budget",  # over the client's budget: 429 with Retry-After; the budget comes back after
    "next_request",  # afterwards, the relay serves a normal request normally
)

EXCEPTION_MARKERS = (
    "Traceback",
    "Error code:",
    "APIStatusError",
    "APIError",
    "APIConnectionError",
    "RateLimitError",
    "InternalServerError",
    "OverloadedError",
    "RemoteProtocolError",
    "overloaded_error",
    "rate_limit_error",
    "rate_limit_exceeded",
    "api_error",
    str(Path(__file__).resolve().parents[1]),  # this checkout's own path: a traceback's mark
    "site-packages",
)
CONTRACT_REQUEST_ID = re.compile(r"req_[0-9a-f]{32}")


@dataclass
class Exchange:
    """Everything the client saw of one request."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""
    elapsed_s: float = 0.0
    left_at: float | None = None  # monotonic time the client hung up, when it did
    error: str | None = None

    @property
    def events(self) -> list[SSEEvent]:
        return [e for e in parse_sse(self.raw) if isinstance(e, SSEEvent)]

    def kinds(self) -> list[str]:
        # A protocol's sentinel after its terminal event (the AI SDK's `[DONE]`) is no event.
        return [read_event(e.event, e.data).kind for e in self.events if e.data != "[DONE]"]

    def text(self) -> str:
        return "".join(
            w.text for w in (read_event(e.event, e.data) for e in self.events) if w.kind == "token"
        )

    def json(self) -> Any:
        try:
            return json.loads(self.raw)
        except ValueError:
            return None


def _start_generation(client: httpx.Client, url: str, spec: RelaySpec, body: Any) -> Any:
    """For a resumable relay: POST the body; the answer, or the URL of its events."""
    response = client.post(url + spec.route, json=body, headers=AUTH)
    if response.status_code != 201:
        return response
    return url + response.json()["events"]


def exchange(
    url: str,
    spec: RelaySpec,
    body: Any,
    *,
    timeout_s: float,
    leave_after_tokens: int | None = None,
    leave_after_s: float | None = None,
    leave_during_post: bool = False,
    headers: dict[str, str] | None = None,
    raw_body: bytes | None = None,
) -> Exchange:
    """One request as a client makes it: read the whole answer, or leave after some tokens or
    some time, never past `timeout_s`."""
    if leave_after_s is not None:
        return _leave_after(url, spec, body, leave_after_s, during_post=leave_during_post)
    result = Exchange()
    started = time.monotonic()
    sent_headers = {"Content-Type": "application/json", **(AUTH if headers is None else headers)}
    content = raw_body if raw_body is not None else json.dumps(body).encode()
    timeout = httpx.Timeout(timeout_s, connect=5.0)
    try:
        with httpx.Client(timeout=timeout) as client:
            if spec.generation and raw_body is None and headers is None:
                target = _start_generation(client, url, spec, body)
                if isinstance(target, httpx.Response):
                    result.status, result.headers = target.status_code, dict(target.headers)
                    result.raw = target.content
                    result.elapsed_s = time.monotonic() - started
                    return result
                request = client.build_request("GET", target, headers=AUTH)
            else:
                request = client.build_request(
                    "POST", url + spec.route, content=content, headers=sent_headers
                )
            response = client.send(request, stream=True)
            try:
                result.status = response.status_code
                result.headers = dict(response.headers)
                buffer = bytearray()
                for chunk in response.iter_raw():
                    buffer += chunk
                    if time.monotonic() - started > timeout_s:
                        result.error = "timeout"
                        break
                    if leave_after_tokens is not None:
                        got = [e for e in parse_sse(bytes(buffer)) if isinstance(e, SSEEvent)]
                        tokens = sum(read_event(e.event, e.data).kind == "token" for e in got)
                        if tokens >= leave_after_tokens:
                            break
                result.raw = bytes(buffer)
            finally:
                response.close()
            result.left_at = time.monotonic()
    except httpx.TimeoutException:
        result.error = "timeout"
    except httpx.HTTPError as exc:
        result.error = type(exc).__name__
    result.elapsed_s = time.monotonic() - started
    return result


def _leave_after(
    url: str, spec: RelaySpec, body: Any, seconds: float, *, during_post: bool
) -> Exchange:
    """Send the request on a raw socket and close it after `seconds`, whatever has arrived.
    For a resumable relay the client leaves its POST (`during_post`) or the GET that follows."""
    result = Exchange()
    started = time.monotonic()
    path, method, payload = spec.route, "POST", json.dumps(body).encode()
    if spec.generation and not during_post:
        with httpx.Client(timeout=10) as client:
            target = _start_generation(client, url, spec, body)
        assert isinstance(target, str), target
        path, method, payload = target.removeprefix(url), "GET", b""
    head = http_head(method, path, {**AUTH, "Content-Type": "application/json"}, len(payload))
    sock = raw_socket_request(url, head, body=payload)
    try:
        time.sleep(max(0.0, started + seconds - time.monotonic()))
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError, OSError):
            result.raw = sock.recv(1 << 20)
    finally:
        sock.close()
        result.left_at = time.monotonic()
    result.elapsed_s = result.left_at - started
    return result


def raw_socket_request(
    url: str, head: str, *, body: bytes = b"", rcvbuf: int | None = None
) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, int(port)))
    sock.sendall(head.encode("latin-1") + body)
    return sock


def read_until_closed(sock: socket.socket, timeout_s: float) -> tuple[bytes, bool]:
    """Everything until the server closes the connection; False if it did not within the time."""
    deadline = time.monotonic() + timeout_s
    data = bytearray()
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            return bytes(data), False
        except OSError:
            return bytes(data), True
        if not chunk:
            return bytes(data), True
        data += chunk
    return bytes(data), False


def dechunk(response: bytes) -> bytes:
    """The body of a raw HTTP/1.1 response with chunked encoding (as far as it arrived)."""
    rest = response.split(b"\r\n\r\n", 1)[-1]
    body = bytearray()
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep or not size_line.strip():
            break
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        body += rest[:size]
        rest = rest[size + 2 :]
    return bytes(body)


def http_head(method: str, path: str, headers: dict[str, str], length: int) -> str:
    lines = [f"{method} {path} HTTP/1.1", "Host: relay", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


def secrets_in(ex: Exchange, mock: Any) -> list[str]:
    text = ex.raw.decode("utf-8", "replace") + "\n"
    text += "\n".join(f"{k}: {v}" for k, v in ex.headers.items())
    provider_ids = {r.request_id for r in mock.requests if r.request_id}
    secrets = [
        OPENAI_ORGANIZATION,
        OPENAI_PROJECT,
        ANTHROPIC_ORGANIZATION,
        MOCK_OPENAI_KEY,
        MOCK_ANTHROPIC_KEY,
        TOKEN,
        *provider_ids,
        *EXCEPTION_MARKERS,
    ]
    return [s for s in secrets if s in text]


@dataclass
class CaseResult:
    failed: dict[str, str] = field(default_factory=dict)
    exchange: Exchange | None = None
    upstream_stop_s: float | None = None  # client hung up -> the mock saw the upstream close

    def fail(self, check: str, why: str) -> None:
        self.failed.setdefault(check, why)


def _check_terminal(result: CaseResult, ex: Exchange, *, want: str | None) -> None:
    kinds = ex.kinds()
    terminals = [k for k in kinds if k in ("done", "error")]
    if ex.status != 200:
        result.fail("one_terminal", f"status {ex.status}, expected a 200 stream")
    elif len(terminals) != 1 or kinds[-1] not in ("done", "error"):
        result.fail("one_terminal", f"events {kinds}: need exactly one terminal event, last")
    elif want is not None and terminals[0] != want:
        result.fail("one_terminal", f"terminal event is {terminals[0]!r}, expected {want!r}")


def _check_http_error(result: CaseResult, ex: Exchange, statuses: set[int], check: str) -> None:
    body = ex.json()
    error = body.get("error") if isinstance(body, dict) else None
    if ex.status not in statuses:
        result.fail(check, f"status {ex.status}, expected one of {sorted(statuses)}")
    elif not isinstance(error, dict) or not all(
        isinstance(error.get(k), str) and error.get(k) for k in ("code", "message", "request_id")
    ):
        result.fail(check, f"body {ex.raw[:200]!r} lacks error.code/message/request_id")


def _upstream_closed_after(
    result: CaseResult, mock: Any, left_at: float, bound_s: float, check: str
) -> None:
    """The mock saw the relay close its stream within `bound_s` of the client leaving, or
    never saw the call: a relay slow to prepare it (an agent's first run on a busy machine)
    may notice the client left before it calls the provider, and then must never call it."""
    deadline = time.monotonic() + bound_s + STALL_S + 1
    while not mock.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    if not mock.requests:
        return
    try:
        seen = mock.wait_until_finished(mock.requests[0], timeout=bound_s + STALL_S + 1)
    except (TimeoutError, IndexError) as exc:
        result.fail(check, f"the provider kept generating: {exc!r}")
        return
    if seen.outcome != "client_disconnected" or seen.disconnected_at is None:
        result.fail(check, f"the mock saw {seen.outcome}, {seen.tokens_sent}/{seen.tokens_planned}")
        return
    waited = seen.disconnected_at - left_at
    result.upstream_stop_s = waited
    if waited > bound_s:
        result.fail(check, f"the upstream closed {waited:.2f} s after the client left")


def _check_next_request(result: CaseResult, url: str, spec: RelaySpec, mock: Any) -> None:
    mock.reset()
    ex = exchange(url, spec, spec.body, timeout_s=10)
    kinds = ex.kinds()
    if ex.status != 200 or kinds.count("done") != 1 or kinds[-1] != "done":
        result.fail("next_request", f"a normal request then got {ex.status} with {kinds}")
    elif not ex.text():
        result.fail("next_request", "a normal request then streamed no text")


def _wait_for_the_mock(mock: Any, timeout_s: float) -> None:
    """Until every request the mock saw has finished (budgets are released as streams end)."""
    deadline = time.monotonic() + timeout_s
    for request in mock.requests:
        with contextlib.suppress(TimeoutError):
            mock.wait_until_finished(request, timeout=max(0.01, deadline - time.monotonic()))


def run_case(url: str, spec: RelaySpec, fault: str, mock: Any) -> CaseResult:
    """Inject `fault` at the mock, drive the relay at `url`, and judge every check."""
    result = CaseResult()
    ex: Exchange | None = None
    if fault in PRE_STREAM:
        status = PRE_STREAM[fault]
        mock.script(Fault.http_error(status, retry_after=1), times=None)
        ex = exchange(url, spec, spec.body, timeout_s=8)
        if ex.elapsed_s > 5 or ex.error:
            result.fail("bounded", f"took {ex.elapsed_s:.2f} s ({ex.error})")
        _check_http_error(result, ex, {429} if status == 429 else {502, 503}, "http_error_json")
        if status == 429 and "retry-after" not in ex.headers:
            result.fail("http_error_json", "429 without Retry-After although the provider sent one")
    elif fault in ("error_event", "drop", "end_early"):
        make = {"error_event": Fault.error_event, "drop": Fault.drop, "end_early": Fault.end_early}
        mock.script(make[fault](3), times=None)
        ex = exchange(url, spec, spec.body, timeout_s=8)
        if ex.elapsed_s > 5 or ex.error:
            result.fail("bounded", f"took {ex.elapsed_s:.2f} s ({ex.error})")
        _check_terminal(result, ex, want="error")
        if fault == "end_early" and ex.kinds()[-1:] != ["error"]:
            result.fail("truncation_reported", f"a cut reply ended with {ex.kinds()[-1:]}")
    elif fault == "stall":
        limit = spec.idle_limit_s
        mock.script(Fault.stall(3, STALL_S if limit else 0.6), times=1)
        bound = (limit + 1.2) if limit is not None else 4.6
        ex = exchange(url, spec, spec.body, timeout_s=bound + 1)
        if ex.elapsed_s > bound or ex.error:
            result.fail("bounded", f"took {ex.elapsed_s:.2f} s, bound {bound:.1f} s ({ex.error})")
        _check_terminal(result, ex, want="error" if limit is not None else None)
        if limit is not None:
            try:
                seen = mock.wait_until_finished(mock.requests[0], timeout=STALL_S + 1)
                if seen.outcome != "client_disconnected" or (
                    seen.finished_at and seen.finished_at - seen.started_at >= STALL_S
                ):
                    result.fail("upstream_cancelled", f"the mock saw {seen.outcome}")
            except (TimeoutError, IndexError) as exc:
                result.fail("upstream_cancelled", str(exc))
    elif fault == "leave_during_open":
        # The provider sends nothing, not even its headers, for STALL_S; the client leaves.
        mock.script(Fault.stall(0, STALL_S, before_headers=True), times=1)
        ex = exchange(
            url, spec, spec.body, timeout_s=STALL_S + 2, leave_after_s=0.2, leave_during_post=True
        )
        assert ex.left_at is not None
        # Even a resumable relay must cancel the call: no generation exists yet to resume.
        _upstream_closed_after(result, mock, ex.left_at, 0.5, "leave_during_open")
    elif fault == "leave_before_first_token":
        mock.script(ttft_ms=STALL_S * 1000, times=1)
        ex = exchange(url, spec, spec.body, timeout_s=STALL_S + 2, leave_after_s=0.3)
        assert ex.left_at is not None
        check = "leave_before_first_token"
        _upstream_closed_after(result, mock, ex.left_at, spec.leave_bound_s, check)
    elif fault == "client_disconnect":
        mock.script(token_interval_ms=TOKEN_INTERVAL_MS, times=1)
        ex = exchange(url, spec, spec.body, timeout_s=8, leave_after_tokens=DISCONNECT_AFTER_TOKENS)
        if ex.error or ex.left_at is None:
            result.fail("bounded", f"the stream failed before the client left ({ex.error})")
        else:
            _upstream_closed_after(
                result, mock, ex.left_at, spec.leave_bound_s, "upstream_cancelled"
            )
    elif fault == "frozen_reader":
        ex = _frozen_reader(result, url, spec, mock)
    elif fault == "invalid_input":
        bad_bodies = [{**spec.body, "message": ""}, {**spec.body, "message": "x" * 40_000}]
        exchanges = [exchange(url, spec, b, timeout_s=5) for b in bad_bodies]
        exchanges.append(exchange(url, spec, None, timeout_s=5, raw_body=b'{"message": '))
        for bad in exchanges:
            body = bad.json()
            if bad.status != 422 or not isinstance(body, dict) or not body.get("detail"):
                result.fail("validation", f"got {bad.status} {bad.raw[:120]!r}, expected a 422")
            elif len(bad.raw) > 2_000:
                result.fail("validation", f"a {len(bad.raw)}-byte 422: the input was echoed")
            for secret in secrets_in(bad, mock):
                result.fail("no_secrets", f"{secret!r} in a 422")
        if mock.requests:
            result.fail("validation", f"{len(mock.requests)} provider call(s) for invalid input")
        ex = exchanges[0]
    elif fault == "oversized_body":
        head = http_head(
            "POST", spec.route, {**AUTH, "Content-Type": "application/json"}, 8_000_000
        )
        with contextlib.closing(raw_socket_request(url, head)) as sock:
            started = time.monotonic()
            data, _closed = read_until_closed(sock, 2.0)
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
        if status != 413:
            result.fail("body_limit", f"an 8 MB body, not sent: got {status or 'nothing'} in 2 s")
        elif time.monotonic() - started > 1.5:
            result.fail("body_limit", "the 413 waited for the body")
        ex = Exchange(status=status, raw=data.split(b"\r\n\r\n", 1)[-1])
    elif fault in ("unauthenticated", "invalid_token"):
        headers = (
            {} if fault == "unauthenticated" else {"Authorization": "Bearer wrong-token-0123456789"}
        )
        ex = exchange(url, spec, spec.body, timeout_s=5, headers=headers)
        _check_http_error(result, ex, {401}, "authentication")
        if ex.status == 401 and "bearer" not in ex.headers.get("www-authenticate", "").lower():
            result.fail("authentication", "a 401 without WWW-Authenticate: Bearer")
        if mock.requests:
            result.fail("authentication", f"{len(mock.requests)} provider call(s) without a login")
    elif fault == "budget_exceeded":
        ex = _budget(result, url, spec, mock)
    else:  # pragma: no cover
        raise ValueError(fault)
    result.exchange = ex
    if ex is not None:
        for secret in secrets_in(ex, mock):
            result.fail("no_secrets", f"{secret!r} was sent to the client")
    _wait_for_the_mock(mock, spec.leave_bound_s + 2)
    _check_next_request(result, url, spec, mock)
    return result


# A reply of many megabytes in a few hundred pieces: more than the loopback buffers between the
# relay and a client that stopped reading hold, so the relay's writes must block.
FROZEN_PIECES = tuple(["x" * 30_000] * 300)


def _frozen_reader(result: CaseResult, url: str, spec: RelaySpec, mock: Any) -> Exchange:
    mock.script(reply=FROZEN_PIECES, times=1)
    body = {**spec.body, "max_tokens": len(FROZEN_PIECES)}
    path, method, payload = spec.route, "POST", json.dumps(body).encode()
    if spec.generation:
        with httpx.Client(timeout=5) as client:
            target = _start_generation(client, url, spec, body)
        assert isinstance(target, str), target
        path, method, payload = target.removeprefix(url), "GET", b""
    head = http_head(method, path, {**AUTH, "Content-Type": "application/json"}, len(payload))
    # A small receive buffer, then no reading at all: the relay's writes fill the socket.
    with contextlib.closing(raw_socket_request(url, head, body=payload, rcvbuf=4096)) as sock:
        first = sock.recv(1024)  # the response has started
        frozen_at = time.monotonic()
        # Long enough for a slow relay (LangChain) to fill the buffers on a busy machine, then for
        # its send deadline to pass.
        time.sleep(FAST.send_timeout_s + 2.5)
        rest, closed = read_until_closed(sock, 10.0)
    data = first + rest
    events = [e for e in parse_sse(dechunk(data)) if isinstance(e, SSEEvent)]
    kinds = [read_event(e.event, e.data).kind for e in events]
    if not closed:
        result.fail("frozen_reader", "the relay kept waiting for the client that stopped reading")
    elif "done" in kinds:
        result.fail("frozen_reader", "the relay waited out the frozen client and finished")
    try:
        seen = mock.wait_until_finished(mock.requests[0], timeout=5)
    except (TimeoutError, IndexError) as exc:
        result.fail("frozen_reader", f"the provider stream is still open: {exc!r}")
    else:
        if (
            seen.finished_at is not None
            and not spec.generation
            and seen.outcome == "client_disconnected"
        ):
            result.upstream_stop_s = seen.finished_at - frozen_at
    return Exchange(status=200, raw=b"")


def _budget(result: CaseResult, url: str, spec: RelaySpec, mock: Any) -> Exchange:
    """MAX_STREAMS slow streams held open, then one more: refused; then the budget returns."""
    mock.script(ttft_ms=3_000, times=MAX_STREAMS)
    holders: list[Exchange] = []
    with ThreadPoolExecutor(MAX_STREAMS) as pool:
        futures = [
            pool.submit(exchange, url, spec, spec.body, timeout_s=5, leave_after_s=0.8)
            for _ in range(MAX_STREAMS)
        ]
        deadline = time.monotonic() + 3
        while len(mock.requests) < MAX_STREAMS and time.monotonic() < deadline:
            time.sleep(0.01)
        over = exchange(url, spec, spec.body, timeout_s=5)
        holders = [f.result() for f in futures]
    _check_http_error(result, over, {429}, "budget")
    if over.status == 429 and not over.headers.get("retry-after", "").isdigit():
        result.fail("budget", "a 429 without a Retry-After in seconds")
    if any(h.status not in (0, 200, 201) for h in holders):
        result.fail("budget", f"the held streams got {[h.status for h in holders]}")
    return over


# --- serving the relays ------------------------------------------------------------------------


class RelayServers:
    """One mock and one server per relay for a whole test module: starting a pair per case
    would cost more than the cases. Each case begins with `mock.reset()`."""

    def __init__(self, mock: Any) -> None:
        self.mock = mock
        self._servers: dict[str, BackgroundServer] = {}

    def url(self, spec: RelaySpec) -> str:
        key = spec.module if spec.lesson else spec.name
        if key not in self._servers:
            self._servers[key] = BackgroundServer(spec.load()).start()
        self.mock.reset()
        return self._servers[key].url

    def stop(self) -> None:
        for server in self._servers.values():
            server.stop()


@contextlib.contextmanager
def relay_servers() -> Iterator[RelayServers]:
    from lessons.mock_providers import MockProviders

    mock = MockProviders(ttft_ms=0, token_interval_ms=0)
    with BackgroundServer(mock.app) as mock_server, pytest.MonkeyPatch.context() as env:
        # The same environment as the `mock` fixture gives, for the module's lifetime.
        env.setenv("OPENAI_BASE_URL", f"{mock_server.url}/v1")
        env.setenv("ANTHROPIC_BASE_URL", mock_server.url)
        env.setenv("OPENAI_API_KEY", MOCK_OPENAI_KEY)
        env.setenv("ANTHROPIC_API_KEY", MOCK_ANTHROPIC_KEY)
        for name in ("OPENAI_API_BASE", "ANTHROPIC_API_URL", "OPENAI_MODEL", "ANTHROPIC_MODEL"):
            env.delenv(name, raising=False)
        for name in ("NO_PROXY", "no_proxy"):
            env.setenv(name, "127.0.0.1,localhost")
        servers = RelayServers(mock)
        try:
            yield servers
        finally:
            servers.stop()


def matrix_params(names: list[str]) -> list[Any]:
    """(relay, fault) pairs for these relays; heavy faults are `slow` outside HEAVY_EVERY_RUN."""
    params = []
    for name in names:
        spec = RELAYS_BY_NAME[name]
        for fault in FAULTS:
            marks = (
                [pytest.mark.slow] if fault in HEAVY_FAULTS and name not in HEAVY_EVERY_RUN else []
            )
            params.append(pytest.param(spec, fault, id=f"{name}-{fault}", marks=marks))
    return params


def check_relay(spec: RelaySpec, fault: str, servers: RelayServers) -> None:
    url = servers.url(spec)
    result = run_case(url, spec, fault, servers.mock)
    assert not result.failed, f"{spec.name} x {fault}: {result.failed}"


Checker = Callable[[RelaySpec, str, RelayServers], None]
