"""The streaming test kit: collect SSE events with arrival times, and assertions that catch bugs.

Every time here is ``time.monotonic()``, the clock the mock providers use for their
``ObservedRequest`` timestamps, so an arrival can be compared with what the mock did (for example
"the first event arrived before the provider finished generating") instead of with a wall-clock
bound that a loaded machine breaks.

Typical test::

    def test_streams(mock, serve):
        url = serve(app)
        mock.set_timing(ttft_ms=0, token_interval_ms=20)
        record = collect_sync(f"{url}/chat/stream", {"message": "hi"})
        assert_streaming_headers(record)
        assert_one_terminal_event(record)
        assert_incremental(record, mock.last_request(), mock=mock)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from lessons.relay_core.contract import WireEvent, read_event
from lessons.toolkit.sse_parser import SSEComment, SSEDecoder, SSEEvent

__all__ = [
    "StreamRecord",
    "StreamTimeoutError",
    "assert_error_event",
    "assert_http_error",
    "assert_incremental",
    "assert_no_event_after_terminal",
    "assert_one_terminal_event",
    "assert_streaming_headers",
    "assert_upstream_cancelled",
    "classify",
    "collect",
    "collect_many",
    "collect_sync",
    "event_data",
    "is_terminal",
]

# Text that must never reach a client in an error (see the error contract).
LEAK_MARKERS = ("Traceback", "Exception", "Error(", "chatcmpl-", "msg_", "sk-", "mock-")


def event_data(event: SSEEvent) -> Any:
    """The event's data as JSON, or the raw string when it is not JSON."""
    try:
        return json.loads(event.data)
    except ValueError:
        return event.data


def classify(event: SSEEvent) -> WireEvent:
    """The wire contract's reading of an event (docs/wire-contract.md): token, done, error..."""
    return read_event(event.event, event.data)


def is_terminal(event: SSEEvent) -> bool:
    """True for the terminal events of every shape in the wire contract: done or error."""
    return classify(event).terminal


@dataclass
class StreamRecord:
    """Everything a test may want to know about one streamed response."""

    url: str
    status: int = 0
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    started_at: float = 0.0  # monotonic: just before the request was sent
    first_byte_at: float | None = None
    finished_at: float | None = None  # when the body ended (or the client stopped reading)
    events: list[SSEEvent] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # monotonic, one per event
    comments: list[SSEComment] = field(default_factory=list)
    comment_arrivals: list[float] = field(default_factory=list)
    items: list[SSEEvent | SSEComment] = field(default_factory=list)  # both, in wire order
    chunks: list[tuple[float, int]] = field(default_factory=list)  # (arrival, size) per chunk
    raw: bytes = b""  # the body as received (after any Content-Encoding is undone)
    incomplete_tail: str | None = None  # an event the stream cut off before its blank line
    stopped_early: bool = False  # the client closed the connection on purpose (stop_after)

    # --- reading the record -------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        return self.status == 200

    def data(self) -> list[Any]:
        """Each event's data, parsed as JSON where it is JSON."""
        return [event_data(e) for e in self.events]

    def names(self) -> list[str]:
        return [e.event for e in self.events]

    def text(self) -> str:
        """The reply's text: every token event's text, in any shape of the wire contract."""
        return "".join(w.text for w in map(classify, self.events) if w.kind == "token")

    def body_json(self) -> Any:
        """The body as JSON (an error response before the stream)."""
        return json.loads(self.raw)

    def offsets_ms(self) -> list[float]:
        """Event arrivals in milliseconds after the request was sent."""
        return [(t - self.started_at) * 1000 for t in self.arrivals]

    @property
    def first_event_at(self) -> float | None:
        return self.arrivals[0] if self.arrivals else None

    def summary(self) -> str:
        """One line a failing assertion can show: status, event names, tail."""
        names = ",".join(self.names()[:12]) + ("..." if len(self.events) > 12 else "")
        tail = f", incomplete tail {self.incomplete_tail!r}" if self.incomplete_tail else ""
        return f"HTTP {self.status}, {len(self.events)} events [{names}]{tail}"


class StreamTimeoutError(AssertionError):
    """The stream did not end within the test's bound; ``record`` holds what did arrive."""

    def __init__(self, message: str, record: StreamRecord) -> None:
        super().__init__(f"{message}; so far: {record.summary()}")
        self.record = record


class _Recorder:
    """Feeds chunks to the SSE decoder and stamps what each chunk completed."""

    def __init__(
        self,
        record: StreamRecord,
        stop_after: int | None,
        stop_when: Callable[[SSEEvent], bool] | None = None,
        on_event: Callable[[SSEEvent, float], None] | None = None,
    ) -> None:
        self.record = record
        self.stop_after = stop_after
        self.stop_when = stop_when
        self.on_event = on_event
        self.decoder = SSEDecoder(include_comments=True)
        self.raw = bytearray()

    def start(self, response: httpx.Response) -> None:
        self.record.status = response.status_code
        self.record.headers = response.headers

    def feed(self, chunk: bytes) -> bool:
        """Record one chunk; True when the test asked to stop reading now."""
        now = time.monotonic()
        record = self.record
        if record.first_byte_at is None:
            record.first_byte_at = now
        record.chunks.append((now, len(chunk)))
        self.raw.extend(chunk)
        for item in self.decoder.feed(chunk):
            record.items.append(item)
            if isinstance(item, SSEComment):
                record.comments.append(item)
                record.comment_arrivals.append(now)
            else:
                record.events.append(item)
                record.arrivals.append(now)
                if self.on_event is not None:
                    self.on_event(item, now)
                if (self.stop_after is not None and len(record.events) >= self.stop_after) or (
                    self.stop_when is not None and self.stop_when(item)
                ):
                    record.stopped_early = True
                    return True
        return False

    def finish(self) -> StreamRecord:
        record = self.record
        record.finished_at = time.monotonic()
        record.raw = bytes(self.raw)
        if not record.stopped_early:
            self.decoder.close()
            record.incomplete_tail = self.decoder.incomplete_tail
        return record


async def collect(
    url: str,
    json: Any = None,
    *,
    client: httpx.AsyncClient | None = None,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109 (a bound on the whole stream, applied inside)
    stop_after: int | None = None,
    stop_when: Callable[[SSEEvent], bool] | None = None,
    on_event: Callable[[SSEEvent, float], None] | None = None,
) -> StreamRecord:
    """Stream one request and record it. ``stop_after=N`` closes the connection after N events
    (a client that goes away), ``stop_when(event)`` after the first event it accepts;
    ``on_event(event, arrival)`` sees each event as it arrives. A stream that does not end within
    ``timeout`` seconds fails the test with ``StreamTimeoutError`` instead of hanging it."""
    record = StreamRecord(url=url)
    recorder = _Recorder(record, stop_after, stop_when, on_event)
    own = client is None
    http = client or httpx.AsyncClient(timeout=timeout)
    try:
        async with asyncio.timeout(timeout):
            record.started_at = time.monotonic()
            async with http.stream(method, url, json=json, headers=headers) as response:
                recorder.start(response)
                async for chunk in response.aiter_bytes():
                    if recorder.feed(chunk):
                        break
    except TimeoutError as exc:
        raise StreamTimeoutError(f"stream did not end within {timeout:g} s", record) from exc
    finally:
        if own:
            await http.aclose()
    return recorder.finish()


def collect_sync(
    url: str,
    json: Any = None,
    *,
    client: httpx.Client | None = None,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    stop_after: int | None = None,
    stop_when: Callable[[SSEEvent], bool] | None = None,
    on_event: Callable[[SSEEvent, float], None] | None = None,
) -> StreamRecord:
    """The synchronous twin of ``collect`` (for plain pytest functions and notebook cells).

    The bound is checked as chunks arrive and by httpx's read timeout while none do.
    """
    record = StreamRecord(url=url)
    recorder = _Recorder(record, stop_after, stop_when, on_event)
    own = client is None
    http = client or httpx.Client(timeout=timeout)
    record.started_at = time.monotonic()
    deadline = record.started_at + timeout
    try:
        with http.stream(method, url, json=json, headers=headers) as response:
            recorder.start(response)
            for chunk in response.iter_bytes():
                if recorder.feed(chunk):
                    break
                if time.monotonic() > deadline:
                    raise StreamTimeoutError(f"stream did not end within {timeout:g} s", record)
    except httpx.TimeoutException as exc:
        raise StreamTimeoutError(f"no data for {timeout:g} s", record) from exc
    finally:
        if own:
            http.close()
    return recorder.finish()


async def collect_many(
    url: str,
    payloads: Iterable[Any],
    *,
    method: str = "POST",
    timeout: float = 30.0,  # noqa: ASYNC109 (a bound on every stream, applied inside)
    stop_after: int | None = None,
) -> list[StreamRecord]:
    """Stream several requests at once over one AsyncClient; records in payload order."""
    # httpx's default pool holds 100 connections; streams beyond it would queue, not run at once.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
        return list(
            await asyncio.gather(
                *(
                    collect(
                        url, p, client=http, method=method, timeout=timeout, stop_after=stop_after
                    )
                    for p in payloads
                )
            )
        )


# --- assertions -----------------------------------------------------------------------------------


def assert_streaming_headers(record: StreamRecord) -> None:
    """HTTP 200 with the streaming headers every route must send (docs/wire-contract.md)."""
    assert record.status == 200, f"expected HTTP 200, got {record.summary()}: {record.raw[:200]!r}"
    content_type = record.headers.get("content-type", "")
    assert content_type.startswith("text/event-stream"), f"Content-Type is {content_type!r}"
    cache = record.headers.get("cache-control", "")
    assert "no-cache" in cache.lower(), f"Cache-Control is {cache!r}, expected no-cache"
    accel = record.headers.get("x-accel-buffering", "")
    assert accel.lower() == "no", f"X-Accel-Buffering is {accel!r}, expected 'no'"


def assert_one_terminal_event(
    record: StreamRecord, is_terminal: Callable[[SSEEvent], bool] = is_terminal
) -> SSEEvent:
    """The stream ended with exactly one terminal event, as its last event, cut off nowhere."""
    assert record.status == 200, f"no stream: {record.summary()}"
    assert not record.stopped_early, "the client stopped reading; the end was never seen"
    terminals = [i for i, e in enumerate(record.events) if is_terminal(e)]
    assert terminals, f"the stream ended without a terminal event: {record.summary()}"
    assert len(terminals) == 1, f"{len(terminals)} terminal events: {record.summary()}"
    assert terminals[0] == len(record.events) - 1, (
        f"events after the terminal one: {record.data()[terminals[0] + 1 :][:3]}"
    )
    assert record.incomplete_tail is None, (
        f"the stream ended inside an event: {record.incomplete_tail!r}"
    )
    return record.events[-1]


def assert_no_event_after_terminal(
    record: StreamRecord, is_terminal: Callable[[SSEEvent], bool] = is_terminal
) -> None:
    """Nothing (no event, no half event) arrived after the first terminal event."""
    for index, event in enumerate(record.events):
        if is_terminal(event):
            after = record.events[index + 1 :]
            assert not after, f"{len(after)} events after the terminal one: {record.data()[index:]}"
            break
    terminal_seen = any(is_terminal(e) for e in record.events)
    assert not (terminal_seen and record.incomplete_tail), (
        f"bytes after the terminal event: {record.incomplete_tail!r}"
    )


def assert_error_event(
    record: StreamRecord, code: str | None = None, *, forbidden: Sequence[str] = LEAK_MARKERS
) -> dict[str, Any]:
    """The stream ended with one terminal error event (with ``code``), safe to show a client."""
    last = assert_one_terminal_event(record)
    kind = classify(last).kind
    assert kind == "error", f"the terminal event is not an error: {record.data()[-1]}"
    data = event_data(last)
    if code is not None:
        assert data.get("code") == code, f"error code {data.get('code')!r}, expected {code!r}"
    assert data.get("request_id"), f"the error event has no request_id: {data}"
    shown = json.dumps(data)
    leaked = [marker for marker in forbidden if marker in shown]
    assert not leaked, f"the error event leaks {leaked}: {data}"
    return data


def assert_http_error(record: StreamRecord, status: int, code: str | None = None) -> dict[str, Any]:
    """An error before the stream: that status, a JSON error body, no event stream."""
    assert record.status == status, f"expected HTTP {status}, got {record.summary()}"
    content_type = record.headers.get("content-type", "")
    assert "event-stream" not in content_type, "an error before the stream must not be a stream"
    error = record.body_json().get("error")
    assert isinstance(error, dict), f"body is not the error contract: {record.raw[:200]!r}"
    assert {"code", "message", "request_id"} <= error.keys(), f"error body lacks fields: {error}"
    if code is not None:
        assert error["code"] == code, f"error code {error['code']!r}, expected {code!r}"
    return error


def assert_incremental(
    record: StreamRecord,
    observed: Any,
    *,
    mock: Any = None,
    timeout: float = 5.0,
    is_token: Callable[[SSEEvent], bool] | None = None,
) -> None:
    """The first event reached the client before the provider finished generating.

    ``observed`` is the mock's ``ObservedRequest`` for this stream. Pass ``mock`` so the
    assertion waits until the mock has recorded its finish. Both sides use ``time.monotonic()``,
    so the comparison needs no wall-clock bound: a relay or middleware that buffers cannot
    deliver anything before the provider is done, however fast the machine. Give the mock a
    token interval (say 20 ms over 10+ tokens) so that a streaming relay has room to win.
    """
    if mock is not None:
        observed = mock.wait_until_finished(observed, timeout=timeout)
    finished = observed.finished_at
    assert finished is not None, "the mock has not finished this request; pass mock= to wait"
    firsts = [
        t
        for e, t in zip(record.events, record.arrivals, strict=True)
        if not is_token or is_token(e)
    ]
    assert firsts, f"no event arrived: {record.summary()}"
    lead_ms = (finished - firsts[0]) * 1000
    assert firsts[0] < finished, (
        f"the first event arrived {-lead_ms:.0f} ms after the provider finished generating: "
        "something between the provider and the client buffers the stream"
    )


def assert_upstream_cancelled(mock: Any, observed: Any = None, *, timeout: float = 5.0) -> Any:
    """After the client went away, the relay closed its provider stream before the end.

    Waits (up to ``timeout``) for the mock to stop streaming, then requires the outcome
    ``client_disconnected`` with fewer tokens sent than planned. A relay that leaks its
    upstream lets the provider run to ``completed``.
    """
    observed = observed if observed is not None else mock.last_request()
    assert observed is not None, "the mock saw no request"
    try:
        observed = mock.wait_until_finished(observed, timeout=timeout)
    except TimeoutError as exc:
        raise AssertionError(
            f"the provider stream was not closed: still streaming {timeout:g} s later ({exc})"
        ) from exc
    assert observed.outcome == "client_disconnected", (
        f"the provider stream was not closed: outcome {observed.outcome!r}, "
        f"{observed.tokens_sent}/{observed.tokens_planned} tokens sent"
    )
    assert observed.tokens_sent < observed.tokens_planned, (
        f"all {observed.tokens_planned} tokens were generated before the upstream closed"
    )
    return observed
