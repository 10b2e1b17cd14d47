"""The fault matrix: every lesson relay crossed with every fault, judged on the wire and the mock.

Each case returns the names of the checks that failed, so the same code asserts that the lesson
relays pass every check (test_relay_survives_fault) and that each check catches the pitfall app
built to break it (test_check_catches_its_pitfall).
"""

from __future__ import annotations

import importlib
import json
import re
import time
from collections.abc import Callable
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
from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.providers import MOCK_ANTHROPIC_KEY, MOCK_OPENAI_KEY
from lessons.toolkit.sse_parser import SSEEvent, parse_sse

# --- the relays ---------------------------------------------------------------------------------

# Limits of the notebook 05 relays under test: short, so a stall case takes well under a second.
FAST_LIMITS = {
    "open_timeout_s": 3.0,
    "first_token_timeout_s": 1.0,
    "idle_timeout_s": 0.3,
    "keepalive_interval_s": 0.2,
}
MATRIX_TOKEN = "matrix-client-token"


def resilient_app() -> Any:
    from lessons.resilient_relay.relay import RelaySettings, create_app

    return create_app(RelaySettings(**FAST_LIMITS))


def protected_app() -> Any:
    from lessons.resilient_relay.protected import create_app
    from lessons.resilient_relay.protection import ProtectionSettings
    from lessons.resilient_relay.relay import RelaySettings

    protection = ProtectionSettings(
        tokens={MATRIX_TOKEN: "matrix"}, max_concurrent_streams=4, requests_per_minute=600, burst=50
    )
    return create_app(protection, RelaySettings(**FAST_LIMITS))


@dataclass(frozen=True)
class RelaySpec:
    """How to start a relay and talk to it. Terminal events are recognised from CONTRACTS.md."""

    name: str
    module: str  # the module that holds `app` (or, with `factory`, the one it builds from)
    route: str
    body: dict[str, Any]
    factory: Callable[[], Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # The relay's own limit on silence between tokens, if it has one.
    idle_limit_s: float | None = None

    def load(self) -> Any:
        try:
            module = importlib.import_module(self.module)
        except ModuleNotFoundError as exc:
            if exc.name and self.module.startswith(exc.name):
                pytest.skip(f"{self.module}: not yet landed")
            raise
        return self.factory() if self.factory is not None else module.app


PROMPT = "What is machine learning?"
MESSAGE = {"message": PROMPT}

RELAYS = [
    # Notebook 01: the original lesson's routes, fixed.
    RelaySpec("nb01-chat-stream", "lessons.sse_basics.chat_stream", "/chat/stream", MESSAGE),
    RelaySpec("nb01-stream-meta", "lessons.sse_basics.stream_meta", "/chat/stream-meta", MESSAGE),
    RelaySpec("nb01-chat-events", "lessons.sse_basics.native_events", "/chat/events", MESSAGE),
    # Notebook 02: both providers.
    RelaySpec(
        "nb02-anthropic", "lessons.two_providers.anthropic_stream", "/anthropic/stream", MESSAGE
    ),
    RelaySpec(
        "nb02-responses", "lessons.two_providers.responses_stream", "/responses/stream", MESSAGE
    ),
    RelaySpec(
        "nb02-relay-openai",
        "lessons.two_providers.relay",
        "/relay/stream",
        {"provider": "openai", **MESSAGE},
    ),
    RelaySpec(
        "nb02-relay-anthropic",
        "lessons.two_providers.relay",
        "/relay/stream",
        {"provider": "anthropic", **MESSAGE},
    ),
    # Notebook 03: LangChain.
    RelaySpec(
        "nb03-langchain", "lessons.chain_streaming.langchain_stream", "/langchain/stream", MESSAGE
    ),
    RelaySpec(
        "nb03-chain-stream", "lessons.chain_streaming.chain_stream", "/chain/stream", MESSAGE
    ),
    RelaySpec(
        "nb03-chain-events", "lessons.chain_streaming.chain_events", "/chain/events", MESSAGE
    ),
    # Notebooks 04 and 06: the relay the test kit drives, and the proxy-ready relay.
    RelaySpec("nb04-chat-app", "lessons.testing_streams.chat_app", "/chat/stream", MESSAGE),
    RelaySpec("nb06-relay", "lessons.proxy_browser.relay", "/chat/stream", MESSAGE),
    # Notebook 05: this notebook's relays.
    RelaySpec(
        "nb05-resilient",
        "lessons.resilient_relay.relay",
        "/chat/stream",
        MESSAGE,
        factory=resilient_app,
        idle_limit_s=FAST_LIMITS["idle_timeout_s"],
    ),
    RelaySpec(
        "nb05-protected",
        "lessons.resilient_relay.protected",
        "/chat/stream",
        MESSAGE,
        factory=protected_app,
        headers={"Authorization": f"Bearer {MATRIX_TOKEN}"},
        idle_limit_s=FAST_LIMITS["idle_timeout_s"],
    ),
]

# --- the faults ---------------------------------------------------------------------------------

# The mock's silence: relays with their own limit must end long before it; for the others it is
# short, since they can only wait it out.
STALL_S = 2.0
STALL_WITHOUT_LIMIT_S = 0.6
DISCONNECT_AFTER_TOKENS = 3
TOKEN_INTERVAL_MS = 25  # paces the disconnect case: about 2 s for the whole reply
PRE_STREAM = {"http_429": 429, "http_500": 500, "http_529": 529}
FAULTS = [*PRE_STREAM, "error_event", "drop", "stall", "client_disconnect", "invalid_input"]

CHECKS = (
    "bounded",  # the exchange ends within its bound
    "http_error_json",  # a failure before the stream is a 4xx/5xx with the contract's JSON body
    "one_terminal",  # a stream has exactly one terminal event, last
    "no_secrets",  # no byte sent carries exception text, provider ids, keys or paths
    "upstream_cancelled",  # the provider stopped generating when the client (or relay) left
    "validation",  # invalid input: 422 with a readable JSON body, and no provider call
    "next_request",  # afterwards, the relay serves a normal request normally
)

# Things that must never reach a client.
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
    closed_at: float | None = None  # monotonic time the client hung up, for disconnect cases
    error: str | None = None

    @property
    def events(self) -> list[SSEEvent]:
        return [e for e in parse_sse(self.raw) if isinstance(e, SSEEvent)]

    def json(self) -> Any:
        try:
            return json.loads(self.raw)
        except ValueError:
            return None


def _data(event: SSEEvent) -> Any:
    try:
        return json.loads(event.data)
    except ValueError:
        return None


def event_kind(event: SSEEvent) -> str:
    """'token', 'done', 'error' or 'other', for every event shape in CONTRACTS.md."""
    data = _data(event)
    fields = data if isinstance(data, dict) else {}
    if event.event == "error" or "error" in fields or fields.get("event") == "error":
        return "error"
    if event.event == "done" or fields.get("done") is True or fields.get("event") == "done":
        return "done"
    if event.event == "token" or "token" in fields or fields.get("event") == "token":
        return "token"
    return "other"


def token_text(events: list[SSEEvent]) -> str:
    out = []
    for event in events:
        if event_kind(event) == "token":
            data = _data(event) or {}
            out.append(str(data.get("token", data.get("text", ""))))
    return "".join(out)


def exchange(
    url: str,
    spec: RelaySpec,
    body: Any,
    *,
    timeout_s: float,
    leave_after_tokens: int | None = None,
    raw_body: bytes | None = None,
) -> Exchange:
    """POST and read the whole answer (or leave after some tokens), never past `timeout_s`."""
    result = Exchange()
    started = time.monotonic()
    headers = {"Content-Type": "application/json", **spec.headers}
    content = raw_body if raw_body is not None else json.dumps(body).encode()
    timeout = httpx.Timeout(timeout_s, connect=5.0)
    try:
        with (
            httpx.Client(timeout=timeout) as client,
            client.stream("POST", url + spec.route, content=content, headers=headers) as response,
        ):
            result.status = response.status_code
            result.headers = dict(response.headers)
            buffer = bytearray()
            for chunk in response.iter_raw():
                buffer += chunk
                if time.monotonic() - started > timeout_s:
                    result.error = "timeout"
                    break
                if leave_after_tokens is not None:
                    tokens = [e for e in parse_sse(bytes(buffer)) if isinstance(e, SSEEvent)]
                    if sum(event_kind(e) == "token" for e in tokens) >= leave_after_tokens:
                        break
            result.raw = bytes(buffer)
        result.closed_at = time.monotonic()
    except httpx.TimeoutException:
        result.error = "timeout"
    except httpx.HTTPError as exc:
        result.error = type(exc).__name__
    result.elapsed_s = time.monotonic() - started
    return result


def secrets_in(ex: Exchange, mock: Any) -> list[str]:
    text = (
        ex.raw.decode("utf-8", "replace")
        + "\n"
        + "\n".join(f"{k}: {v}" for k, v in ex.headers.items())
    )
    provider_ids = {r.request_id for r in mock.requests if r.request_id}
    secrets = [
        OPENAI_ORGANIZATION,
        OPENAI_PROJECT,
        ANTHROPIC_ORGANIZATION,
        MOCK_OPENAI_KEY,
        MOCK_ANTHROPIC_KEY,
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
    kinds = [event_kind(e) for e in ex.events]
    terminals = [k for k in kinds if k in ("done", "error")]
    if ex.status != 200:
        result.fail("one_terminal", f"status {ex.status}, expected a 200 stream")
    elif len(terminals) != 1 or kinds[-1] not in ("done", "error"):
        result.fail("one_terminal", f"events {kinds}: need exactly one terminal event, last")
    elif want is not None and terminals[0] != want:
        result.fail("one_terminal", f"terminal event is {terminals[0]!r}, expected {want!r}")


def _check_next_request(result: CaseResult, url: str, spec: RelaySpec, mock: Any) -> None:
    mock.reset()
    ex = exchange(url, spec, spec.body, timeout_s=10)
    kinds = [event_kind(e) for e in ex.events]
    if ex.status != 200 or kinds.count("done") != 1 or kinds[-1] != "done":
        result.fail("next_request", f"a normal request then got {ex.status} with {kinds}")
    elif not token_text(ex.events):
        result.fail("next_request", "a normal request then streamed no text")


def run_case(url: str, spec: RelaySpec, fault: str, mock: Any) -> CaseResult:
    """Inject `fault` at the mock, drive the relay at `url`, and judge every check."""
    result = CaseResult()
    if fault in PRE_STREAM:
        status = PRE_STREAM[fault]
        mock.script(Fault.http_error(status, retry_after=1), times=None)
        ex = exchange(url, spec, spec.body, timeout_s=8)
        if ex.elapsed_s > 5 or ex.error:
            result.fail("bounded", f"took {ex.elapsed_s:.2f} s ({ex.error})")
        body = ex.json()
        wanted = {429} if status == 429 else {502, 503}
        error = body.get("error") if isinstance(body, dict) else None
        if ex.status not in wanted:
            result.fail("http_error_json", f"status {ex.status}, expected one of {wanted}")
        elif not isinstance(error, dict) or not all(
            isinstance(error.get(k), str) and error.get(k)
            for k in ("code", "message", "request_id")
        ):
            result.fail("http_error_json", f"body {ex.raw[:200]!r} lacks error.code/message/id")
        elif status == 429 and "retry-after" not in ex.headers:
            result.fail("http_error_json", "429 without Retry-After although the provider sent one")
    elif fault in ("error_event", "drop"):
        mock.script(Fault.error_event(3) if fault == "error_event" else Fault.drop(3), times=None)
        ex = exchange(url, spec, spec.body, timeout_s=8)
        if ex.elapsed_s > 5 or ex.error:
            result.fail("bounded", f"took {ex.elapsed_s:.2f} s ({ex.error})")
        _check_terminal(result, ex, want="error")
    elif fault == "stall":
        limit = spec.idle_limit_s
        mock.script(Fault.stall(3, STALL_S if limit else STALL_WITHOUT_LIMIT_S), times=1)
        bound = (limit + 1.2) if limit is not None else (STALL_WITHOUT_LIMIT_S + 4)
        ex = exchange(url, spec, spec.body, timeout_s=bound + 1)
        if ex.elapsed_s > bound or ex.error:
            result.fail("bounded", f"took {ex.elapsed_s:.2f} s, bound {bound:.1f} s ({ex.error})")
        _check_terminal(result, ex, want="error" if limit is not None else None)
        if limit is not None:
            # The relay gave up on the provider: it must also have closed the upstream.
            try:
                seen = mock.wait_until_finished(mock.requests[0], timeout=STALL_S + 1)
                if seen.outcome != "client_disconnected" or (
                    seen.finished_at and seen.finished_at - seen.started_at >= STALL_S
                ):
                    result.fail("upstream_cancelled", f"the mock saw {seen.outcome}")
            except (TimeoutError, IndexError) as exc:
                result.fail("upstream_cancelled", str(exc))
    elif fault == "client_disconnect":
        mock.script(token_interval_ms=TOKEN_INTERVAL_MS, times=1)
        ex = exchange(url, spec, spec.body, timeout_s=8, leave_after_tokens=DISCONNECT_AFTER_TOKENS)
        if ex.error or ex.closed_at is None:
            result.fail("bounded", f"the stream failed before the client left ({ex.error})")
        else:
            try:
                seen = mock.wait_until_finished(mock.requests[0], timeout=3.0)
            except (TimeoutError, IndexError) as exc:
                result.fail("upstream_cancelled", f"the provider kept generating: {exc}")
            else:
                if seen.outcome != "client_disconnected" or seen.tokens_sent >= seen.tokens_planned:
                    result.fail(
                        "upstream_cancelled",
                        f"the mock saw {seen.outcome}, {seen.tokens_sent}/{seen.tokens_planned}",
                    )
                elif seen.disconnected_at is not None:
                    result.upstream_stop_s = seen.disconnected_at - ex.closed_at
    elif fault == "invalid_input":
        bad_bodies = [
            {**spec.body, "message": ""},
            {**spec.body, "message": "x" * 40_000},
        ]
        exchanges = [exchange(url, spec, b, timeout_s=5) for b in bad_bodies]
        exchanges.append(exchange(url, spec, None, timeout_s=5, raw_body=b'{"message": '))
        for bad in exchanges:
            body = bad.json()
            if bad.status != 422 or not isinstance(body, dict) or not body.get("detail"):
                result.fail("validation", f"got {bad.status} {bad.raw[:120]!r}, expected a 422")
            for secret in secrets_in(bad, mock):
                result.fail("no_secrets", f"{secret!r} in a 422")
        if mock.requests:
            result.fail("validation", f"{len(mock.requests)} provider call(s) for invalid input")
        ex = exchanges[0]
    else:  # pragma: no cover
        raise ValueError(fault)
    result.exchange = ex
    for secret in secrets_in(ex, mock):
        result.fail("no_secrets", f"{secret!r} was sent to the client")
    _check_next_request(result, url, spec, mock)
    return result


# --- the matrix -------------------------------------------------------------------------------


class RelayServers:
    """One mock and one server per relay for the whole module: starting and stopping a pair per
    case would cost more than the cases. Each case begins with `mock.reset()`."""

    def __init__(self, mock: Any) -> None:
        self.mock = mock
        self._servers: dict[str, BackgroundServer] = {}

    def url(self, spec: RelaySpec) -> str:
        if spec.name not in self._servers:
            self._servers[spec.name] = BackgroundServer(spec.load()).start()
        self.mock.reset()
        return self._servers[spec.name].url

    def stop(self) -> None:
        for server in self._servers.values():
            server.stop()


@pytest.fixture(scope="module")
def relays() -> Any:
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


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("spec", RELAYS, ids=lambda s: s.name)
def test_relay_survives_fault(spec: RelaySpec, fault: str, relays: RelayServers) -> None:
    url = relays.url(spec)
    result = run_case(url, spec, fault, relays.mock)
    assert not result.failed, f"{spec.name} x {fault}: {result.failed}"


# --- each check catches the pitfall that breaks it -------------------------------------------


def _pitfall(name: str, module: str, **options: Any) -> RelaySpec:
    return RelaySpec(name, f"lessons.resilient_relay.{module}", "/chat/stream", MESSAGE, **options)


PITFALL_CASES = [
    (_pitfall("leaky", "leaky_errors_pitfall"), "error_event", "no_secrets"),
    (_pitfall("leaky", "leaky_errors_pitfall"), "http_500", "no_secrets"),
    (_pitfall("silent", "silent_error_pitfall"), "error_event", "one_terminal"),
    (_pitfall("late-open", "late_open_pitfall"), "http_429", "http_error_json"),
    (_pitfall("detached", "detached_producer_pitfall"), "client_disconnect", "upstream_cancelled"),
    # It claims a 0.3 s silence limit, as the resilient relay has, but enforces none.
    (_pitfall("no-deadline", "no_deadline_pitfall", idle_limit_s=0.3), "stall", "bounded"),
    (_pitfall("leaked-slot", "leaked_slot_pitfall"), "error_event", "next_request"),
    (_pitfall("unvalidated", "unvalidated_pitfall"), "invalid_input", "validation"),
]


def test_every_check_has_a_pitfall() -> None:
    assert {check for *_, check in PITFALL_CASES} == set(CHECKS)


@pytest.mark.parametrize(
    ("spec", "fault", "check"), PITFALL_CASES, ids=lambda v: getattr(v, "name", v)
)
def test_check_catches_its_pitfall(
    spec: RelaySpec, fault: str, check: str, mock: Any, serve: Any
) -> None:
    # A pitfall may leave a slot taken or a pump running: each gets a mock and server of its own.
    url = serve(spec.load())
    result = run_case(url, spec, fault, mock)
    assert check in result.failed, f"{spec.name} x {fault} passed {check!r}: {result.failed}"
