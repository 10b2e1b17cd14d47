"""Probes for notebook 01 (and its tests): clients that misbehave on purpose, timed on the mock's
clock, and uvicorn's own error log kept for a cell to show instead of reaching its stderr.

- `leave_before_the_answer`: a client that gives up while the provider has not even sent its
  response headers. Does the relay notice then, or only once the provider answers?
- `stop_reading`: a client that stops reading (a frozen tab, a stuck proxy) while the reply is
  large. Does the relay give up on it and close the provider's stream, or hold both open?
- `uvicorn_errors`: what uvicorn logs as an error meanwhile (a traceback, a response that ended
  without its last message), collected for the cell to print on purpose.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lessons.mock_providers import Fault
from lessons.toolkit.testkit import classify, collect_sync
from lessons.toolkit.timing import fmt_ms


@contextlib.contextmanager
def uvicorn_errors(
    expect: int = 0, timeout_s: float = 2.0, settle_s: float = 0.0
) -> Iterator[list[str]]:
    """Collect what uvicorn logs as errors while the block runs (the first line of each record),
    instead of letting it reach the running cell's stderr. uvicorn logs an exception after it
    has answered the client, so the block's end waits until `expect` records have come (up to
    `timeout_s`), or for `settle_s` when how many will come is not known. Start the servers
    before the block: creating a uvicorn server configures uvicorn's loggers afresh."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage().splitlines()[0])

    logger = logging.getLogger("uvicorn.error")
    handler = Keep(level=logging.ERROR)
    saved = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield seen
    finally:
        time.sleep(settle_s)
        deadline = time.monotonic() + timeout_s
        while len(seen) < expect and time.monotonic() < deadline:
            time.sleep(0.005)
        logger.removeHandler(handler)
        logger.propagate = saved


@dataclass(frozen=True)
class Departure:
    """A client that left while the provider was silent, seen from the provider's side."""

    left_after_ms: float  # when the client gave up, after sending its request
    provider_answered_after_ms: float  # when the provider would have answered (its stall)
    outcome: str  # the mock's: client_disconnected (the relay hung up) or completed
    tokens_sent: int
    closed_after_ms: float  # when the provider's stream ended, after the client left


def leave_before_the_answer(
    url: str,
    body: dict[str, Any],
    mock: Any,
    *,
    stall_s: float = 1.0,
    leave_after_s: float = 0.2,
) -> Departure:
    """POST `body` to `url` while the mock withholds even its response headers for `stall_s`;
    the client closes its connection after `leave_after_s`."""
    mock.script(fault=Fault.stall(after_tokens=0, seconds=stall_s, before_headers=True), times=1)
    # A socket of our own, so that the moment of leaving is the moment it is closed: the mock
    # can then only notice after it.
    sock = _post(url, body)
    sent = time.monotonic()
    time.sleep(leave_after_s)
    left = time.monotonic()
    sock.close()
    seen = mock.wait_until_finished(mock.last_request(), timeout=stall_s + 10)
    ended = seen.finished_at if seen.finished_at is not None else time.monotonic()
    return Departure(
        (left - sent) * 1000,
        stall_s * 1000,
        seen.outcome,
        seen.tokens_sent,
        (ended - left) * 1000,
    )


def _post(url: str, body: dict[str, Any], *, receive_buffer: int | None = None) -> socket.socket:
    """A connected socket that has sent `POST url` with `body` as JSON, and read nothing yet."""
    payload = json.dumps(body).encode()
    host, port = url.removeprefix("http://").split("/", 1)[0].split(":")
    path = "/" + url.removeprefix("http://").split("/", 1)[1]
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.connect((host, int(port)))
        sock.sendall(head.encode("latin-1") + payload)
    except OSError:
        sock.close()
        raise
    return sock


# A reply of 9 MB in 300 pieces: more than the sockets between the relay and a client that
# stopped reading can hold, so the relay's writes block and the provider's stream backs up.
LARGE_REPLY = tuple(["x" * 30_000] * 300)


@dataclass(frozen=True)
class FrozenReader:
    """A client that stopped reading, after `held_ms`, seen from both sides."""

    held_ms: float
    server_closed: bool  # the relay closed the connection to the frozen client
    outcome: str  # the mock's, at the end of the hold: in_progress, client_disconnected, ...
    tokens_sent: int
    tokens_planned: int
    upstream_closed_after_ms: float | None  # when the relay hung up on the provider, if it did


def stop_reading(url: str, body: dict[str, Any], mock: Any, *, hold_s: float = 1.5) -> FrozenReader:
    """POST `body` (with a large scripted reply) to `url` from a client with a 4 KB receive
    buffer that reads the response's first bytes and then nothing for `hold_s`."""
    mock.script(reply=LARGE_REPLY, times=1, ttft_ms=0, token_interval_ms=0)
    sock = _post(url, {**body, "max_tokens": len(LARGE_REPLY)}, receive_buffer=4096)
    try:
        sock.recv(1024)  # the response has started
        frozen = time.monotonic()
        time.sleep(hold_s)
        seen = mock.last_request()
        closed = _closed_by_server(sock)
    finally:
        sock.close()
    stopped = (
        seen.finished_at - frozen
        if seen.outcome == "client_disconnected" and seen.finished_at is not None
        else None
    )
    # Whatever the relay did, the client is gone now: let the mock finish before the next cell.
    mock.wait_until_finished(mock.last_request(), timeout=10)
    return FrozenReader(
        hold_s * 1000,
        closed,
        seen.outcome,
        seen.tokens_sent,
        seen.tokens_planned,
        stopped * 1000 if stopped is not None else None,
    )


def _closed_by_server(sock: socket.socket) -> bool:
    """Drain what is buffered; True when the server has closed its end of the connection."""
    sock.settimeout(0.2)
    try:
        while True:
            if not sock.recv(1 << 20):
                return True
    except (TimeoutError, OSError):
        return False


def compare_relays(relays: dict[str, str], mock: Any) -> list[list[str]]:
    """Four faults against each relay (name -> URL of a route with `{"token", "done"}` events):
    a 429 before the stream, a stream ended without its finish reason, 1.2 s before the first
    token, a client that leaves after the first token. One row per fault, one column per relay,
    each cell what the client (or, for the last, the provider) saw."""

    def refused(url: str) -> str:
        mock.script(fault=Fault.http_error(429, retry_after=2), times=1)
        record = collect_sync(url, {"message": "Say hello."})
        if record.headers.get("content-type", "").startswith("application/json"):
            code = record.body_json()["error"]["code"]
            return f"{record.status}, Retry-After {record.headers.get('retry-after')}, {code}"
        shown = "the provider's text" if "org-" in record.raw.decode() else "an error"
        return f"{record.status}, then an event with {shown}"

    def cut(url: str) -> str:
        mock.script(fault=Fault.end_early(after_tokens=3), times=1)
        record = collect_sync(url, {"message": "Say hello."})
        last = classify(record.events[-1])
        pieces = sum(classify(e).kind == "token" for e in record.events)
        ending = "done" if last.kind == "done" else f"error {last.code}"
        return f"{ending} after {pieces} of 9 pieces"

    def slow(url: str) -> str:
        mock.script(ttft_ms=1200, times=1)
        record = collect_sync(url, {"message": "Say hello."})
        tokens = zip(record.events, record.arrivals, strict=True)
        first = next(t for e, t in tokens if classify(e).kind == "token")
        pings = [t for t in record.comment_arrivals if t < first]
        if len(pings) < 2:
            return f"silent for {fmt_ms((first - record.started_at) * 1000)}"
        gaps = sorted(b - a for a, b in itertools.pairwise(pings))
        return f"a ping every {fmt_ms(gaps[len(gaps) // 2] * 1000)} until the first token"

    def leave(url: str) -> str:
        mock.set_timing(token_interval_ms=20)
        try:
            record = collect_sync(
                url,
                {"message": "What is machine learning?"},
                stop_when=lambda e: classify(e).kind == "token",
            )
            left = record.arrivals[-1]  # the client hangs up as soon as this token arrives
            seen = mock.wait_until_finished(mock.last_request(), timeout=10)
        finally:
            mock.set_timing(token_interval_ms=0)
        ended = seen.finished_at if seen.finished_at is not None else time.monotonic()
        return f"{seen.outcome} after {fmt_ms((ended - left) * 1000)}"

    faults = [
        ("the provider answers 429", refused),
        ("the stream ends without its finish reason", cut),
        ("1.2 s before the first token", slow),
        ("the client leaves after the first token", leave),
    ]
    return [[label, *(probe(url) for url in relays.values())] for label, probe in faults]
