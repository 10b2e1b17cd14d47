"""Notebook 05's helpers: ask a relay, say what the client and the provider saw, leave or stop
reading at a chosen moment, stop a server mid-stream, and plot a stream's timeline.

Support code, not the lesson: what these helpers exercise is in `lessons/resilient_relay/` and
`lessons/relay_core/`. Every time here is `time.monotonic()`, the mock's own clock, so what a
client saw can be compared with what the provider did.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import uvicorn

from lessons.mock_providers import Fault, MockProviders, ObservedRequest
from lessons.relay_core.contract import WireEvent
from lessons.toolkit.display import Table, show_table
from lessons.toolkit.sse_parser import SSEEvent, parse_sse
from lessons.toolkit.testkit import StreamRecord, classify, collect_sync
from lessons.toolkit.timing import fmt_ms, start_axes_at_zero

PROMPT = "What is machine learning?"
MESSAGE = {"message": PROMPT}
# How long a helper waits for the mock to stop answering a request before it says so.
PROVIDER_WAIT_S = 5.0


class _ExpectedNoise(logging.Filter):
    """Drops the one uvicorn error this notebook causes on purpose (see `prepare`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


# Kept, not printed: see `prepare`.
set_aside: list[str] = []


def _known_finalizer_noise(unraisable: Any) -> bool:
    """The SDK transport's response reader, finalised by the garbage collector while marked as
    running: an open issue of the suite (tests/test_nb05_soak.py tolerates it too)."""
    name = getattr(getattr(unraisable.object, "ag_code", None), "co_qualname", "")
    return (
        name == "Response.aiter_raw"
        and isinstance(unraisable.exc_value, ValueError)
        and "already executing" in str(unraisable.exc_value)
    )


def prepare(mock: MockProviders | None) -> MockProviders:
    """The notebook's setup: it injects faults into the mock in nearly every cell, so it needs
    the mock; and it keeps expected messages out of the cells' output (a message on stderr would
    land in whichever cell runs when it comes). asyncio warns for every write to a socket whose
    client has gone, which the pitfalls do on purpose; uvicorn reports an error when a response
    ends without its last message, which the relay does on purpose for a client that stopped
    reading: there is nobody to send it to. And one known message of the garbage collector
    (`_known_finalizer_noise`) is kept in `set_aside` instead of printed."""
    if mock is None:
        raise RuntimeError(
            "Notebook 05 reproduces provider failures with the mock providers' fault injection; "
            "run it without WORKBOOK_PROVIDER=live (the lesson code is the same either way)."
        )
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _ExpectedNoise) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(_ExpectedNoise())
    previous = sys.unraisablehook
    if getattr(previous, "__name__", "") != "_set_aside_known_noise":

        def _set_aside_known_noise(unraisable: Any) -> None:
            if _known_finalizer_noise(unraisable):
                set_aside.append(f"{unraisable.err_msg}: {unraisable.exc_value}")
            else:
                previous(unraisable)

        sys.unraisablehook = _set_aside_known_noise
    return mock


def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"still not so after {timeout:g} s")
        time.sleep(0.01)


# --- one request, seen from both ends -----------------------------------------------------------


def ask(
    url: str,
    body: Any = None,
    *,
    route: str = "/chat/stream",
    headers: dict[str, str] | None = None,
    stop_after: int | None = None,
    timeout: float = 10.0,
) -> StreamRecord:
    """What the client sees of one request, with arrival times (the test kit's record)."""
    return collect_sync(
        url + route,
        MESSAGE if body is None else body,
        headers=headers,
        stop_after=stop_after,
        timeout=timeout,
    )


def _error_of(record: StreamRecord) -> dict[str, Any]:
    try:
        body = record.body_json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def client_view(record: StreamRecord, *, retry_after: bool = True) -> str:
    """One line: the status and error code, or the stream's shape and how it ended.
    `retry_after=False` leaves out a Retry-After whose value depends on timing."""
    if record.status != 200:
        retry = record.headers.get("retry-after") if retry_after else None
        extra = f", Retry-After: {retry}" if retry else ""
        return f"HTTP {record.status}{extra}, {_error_of(record).get('code', 'no error body')}"
    read = [classify(event) for event in record.events]
    tokens = sum(w.kind == "token" for w in read)
    pings = ", keep-alive pings" if record.comments else ""
    terminals = [w for w in read if w.terminal]
    if record.stopped_early:
        end = "the client left"
    elif not terminals:
        end = "no terminal event"
    elif len(terminals) > 1:
        end = f"{len(terminals)} terminal events"
    elif terminals[0].kind == "done":
        end = "done"
    else:
        end = f"error {terminals[0].code or terminals[0].message!r}"
    return f"HTTP 200, {tokens} tokens{pings}, then {end}"


def provider_view(seen: ObservedRequest | None, *, counts: bool = True) -> str:
    """One line: what the mock did. `counts=False` where the count depends on timing (a client
    that leaves mid-reply): then it only says whether the reply was cut short."""
    if seen is None:
        return "never called"
    if seen.status != 200:
        return f"{seen.outcome}, answered HTTP {seen.status}"
    if counts or seen.tokens_sent == seen.tokens_planned:
        sent = f"sent {seen.tokens_sent} of {seen.tokens_planned} tokens"
    else:
        sent = f"stopped early, {seen.tokens_planned} tokens planned"
    return f"{seen.outcome}, {sent}"


def shown_text(record: StreamRecord, limit: int = 32) -> str:
    text = record.text()
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


@dataclass
class Trial:
    """One request to a relay with one fault scripted at the mock, seen from both ends."""

    label: str
    record: StreamRecord
    seen: ObservedRequest | None
    attempts: int

    @property
    def took_ms(self) -> float:
        assert self.record.finished_at is not None
        return (self.record.finished_at - self.record.started_at) * 1000

    @property
    def client(self) -> str:
        return client_view(self.record)

    @property
    def provider(self) -> str:
        view = provider_view(self.seen, counts=not self.record.stopped_early)
        return view + (f" ({self.attempts} attempts)" if self.attempts > 1 else "")


def trial(
    label: str,
    url: str,
    mock: MockProviders,
    fault: Fault | None = None,
    *,
    times: int | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    stop_after: int | None = None,
    **rule: Any,
) -> Trial:
    """Reset the mock, script `fault` (and any pace in `rule`), ask once, wait for the mock."""
    mock.reset()
    if fault is not None or rule:
        mock.script(fault, times=times, **rule)
    record = ask(url, body, headers=headers, stop_after=stop_after)
    requests = mock.requests
    seen = mock.wait_until_finished(requests[-1], PROVIDER_WAIT_S) if requests else None
    return Trial(label, record, seen, len(requests))


def trials_table(
    trials: Sequence[Trial], *, text: bool = False, took: bool = False, caption: str = ""
) -> Table:
    """The trials as a table. A timing column comes last: its header is wider than any value,
    so the plain-text table lines up the same on every run once timings are masked."""
    headers = ["case", "the client receives"]
    headers += ["text the user saw"] if text else []
    headers += ["the provider (mock) observed"]
    headers += ["the client waited for its answer"] if took else []
    rows = []
    for t in trials:
        row: list[object] = [t.label, t.client]
        row += [shown_text(t.record)] if text else []
        row += [t.provider]
        row += [fmt_ms(t.took_ms)] if took else []
        rows.append(row)
    return show_table(headers, rows, caption=caption)


# --- a stream's timeline ------------------------------------------------------------------------


def plot_streams(records: Mapping[str, StreamRecord], *, title: str) -> Any:
    """One row per stream, the first at the top: tokens as ticks, keep-alive comments as dots,
    the terminal event (or the moment the connection closed without one) as a marker;
    milliseconds from the request, from 0."""
    import matplotlib.pyplot as plt

    styles = {
        "token": {"marker": "|", "s": 250, "color": "tab:blue"},
        "keep-alive comment": {"marker": "o", "s": 18, "color": "tab:gray"},
        "done": {"marker": "o", "s": 90, "color": "tab:green", "zorder": 3},
        "error event": {"marker": "X", "s": 90, "color": "tab:red", "zorder": 3},
        "closed, no terminal event": {"marker": "s", "s": 60, "color": "black", "zorder": 3},
    }
    points: dict[str, tuple[list[float], list[int]]] = {name: ([], []) for name in styles}

    def add(name: str, at: float, row: int) -> None:
        points[name][0].append(at)
        points[name][1].append(row)

    for row, record in enumerate(records.values()):
        read = [classify(e) for e in record.events]
        for at, event in zip(record.offsets_ms(), read, strict=True):
            if event.kind == "token":
                add("token", at, row)
            elif event.terminal:
                add("done" if event.kind == "done" else "error event", at, row)
        for at in record.comment_arrivals:
            add("keep-alive comment", (at - record.started_at) * 1000, row)
        if not any(event.terminal for event in read) and record.finished_at is not None:
            add("closed, no terminal event", (record.finished_at - record.started_at) * 1000, row)
    fig, ax = plt.subplots(figsize=(9, 1.4 + 0.6 * len(records)))
    for name, (xs, ys) in points.items():
        if xs:
            ax.scatter(xs, ys, label=name, **styles[name])
    ax.set_yticks(range(len(records)), list(records))
    ax.set_ylim(len(records) - 0.4, -0.6)  # the first stream at the top
    ax.set_xlabel("milliseconds since the request was sent")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    start_axes_at_zero(ax)
    fig.legend(loc="lower center", ncol=len(points), fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def largest_gap_ms(record: StreamRecord) -> float:
    """The longest time the client's connection carried no byte at all (from the request)."""
    moments = [record.started_at, *(at for at, _ in record.chunks)]
    if record.finished_at is not None:
        moments.append(record.finished_at)
    return max(b - a for a, b in itertools.pairwise(moments)) * 1000


# --- raw sockets: a client that leaves at an exact moment, or stops reading ---------------------


def _connect(
    url: str, path: str, body: Any, headers: dict[str, str], rcvbuf: int | None
) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    head = [f"POST {path} HTTP/1.1", "Host: relay", "Content-Type: application/json"]
    head += [f"Content-Length: {len(payload)}"] + [f"{k}: {v}" for k, v in headers.items()]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        # Set before connecting: the window the relay may fill before its writes block.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, int(port)))
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
    return sock


Moment = Literal["during the provider's headers", "before the first token", "mid-stream"]
MOMENTS: tuple[Moment, ...] = (
    "during the provider's headers",
    "before the first token",
    "mid-stream",
)


@dataclass
class Departure:
    """A client that left at `moment`, and what the provider did about it."""

    moment: Moment
    left_at: float
    seen: ObservedRequest | None

    @property
    def released_ms(self) -> float | None:
        """Milliseconds from the client leaving to the provider's stream closing, or None when
        the provider was not released (it generated the whole reply for nobody)."""
        seen = self.seen
        if seen is None or seen.outcome != "client_disconnected" or seen.disconnected_at is None:
            return None
        return (seen.disconnected_at - self.left_at) * 1000

    def describe(self) -> str:
        if self.seen is None:
            return "the provider was never called"
        if self.released_ms is None:
            return provider_view(self.seen)
        return provider_view(self.seen, counts=False)


def leave(
    url: str,
    mock: MockProviders,
    moment: Moment,
    *,
    headers: dict[str, str] | None = None,
    token_interval_ms: float = 25,
) -> Departure:
    """Send one request and hang up at `moment`; wait for the mock to finish with it.

    During the provider's headers: the mock sends nothing for 2 s and the client leaves after
    0.2 s. Before the first token: the mock answers at once but its first token takes 2 s; the
    client leaves 0.1 s after the relay's response started. Mid-stream: after three tokens.
    """
    mock.reset()
    if moment == "mid-stream":
        mock.script(token_interval_ms=token_interval_ms, times=1)
        record = ask(url, headers=headers, stop_after=3)
        assert record.finished_at is not None
        left_at = record.finished_at
    else:
        if moment == "during the provider's headers":
            mock.script(Fault.stall(0, 2.0, before_headers=True), times=1)
        else:
            mock.script(ttft_ms=2000, times=1)
        sock = _connect(url, "/chat/stream", MESSAGE, headers or {}, None)
        try:
            if moment == "before the first token":
                sock.settimeout(2.0)
                sock.recv(1024)  # the response has started: headers, nothing else yet
                time.sleep(0.1)
            else:
                time.sleep(0.2)
        finally:
            sock.close()
            left_at = time.monotonic()
    requests = mock.requests
    if not requests:
        return Departure(moment, left_at, None)
    # A relay that does not release the provider lets it finish the reply (2 s, plus the reply).
    seen = mock.wait_until_finished(requests[-1], PROVIDER_WAIT_S)
    return Departure(moment, left_at, seen)


def median_release_ms(url: str, mock: MockProviders, runs: int = 20) -> tuple[float, float]:
    """Median and largest time from a client leaving mid-stream to the upstream closing."""
    released = []
    for _ in range(runs):
        ms = leave(url, mock, "mid-stream").released_ms
        if ms is None:
            raise AssertionError("the relay did not close its upstream when the client left")
        released.append(ms)
    return statistics.median(released), max(released)


# A reply of many megabytes in a few hundred pieces: more than the loopback buffers between the
# relay and a client that stopped reading hold, so the relay's writes must block.
HUGE_REPLY = tuple(["x" * 30_000] * 300)


@dataclass
class Freeze:
    """A client that read the response's start and then stopped reading."""

    frozen_at: float
    seen: ObservedRequest
    held_s: float

    @property
    def released_s(self) -> float | None:
        """Seconds from the client freezing to the relay closing its provider stream, or None
        if the provider was still held when the client gave up after `held_s`."""
        if self.seen.outcome != "client_disconnected" or self.seen.finished_at is None:
            return None
        released = self.seen.finished_at - self.frozen_at
        return released if released < self.held_s else None


def freeze(url: str, mock: MockProviders, *, hold_s: float = 5.0) -> Freeze:
    """Ask for a reply of 9 MB, read the first bytes, then read nothing for `hold_s` seconds
    (or until the relay releases the provider), then hang up.

    A relay's writes block only once the socket buffers between it and the client are full (a
    few megabytes on loopback), so a send timeout counts from a moment a little after the
    freeze; on a busy machine, noticeably after."""
    mock.reset()
    mock.script(reply=HUGE_REPLY, times=1)
    body = {"message": PROMPT, "max_tokens": len(HUGE_REPLY)}
    sock = _connect(url, "/chat/stream", body, {}, rcvbuf=4096)
    try:
        sock.settimeout(5.0)
        sock.recv(1024)
        frozen_at = time.monotonic()
        [request] = mock.wait_for_requests(1, timeout=2.0)
        with contextlib.suppress(TimeoutError):
            mock.wait_until_finished(request, timeout=hold_s)
    finally:
        sock.close()
    seen = mock.wait_until_finished(request, PROVIDER_WAIT_S)
    return Freeze(frozen_at, seen, hold_s)


# --- shutdown with a stream in flight -----------------------------------------------------------


@dataclass
class Shutdown:
    """What the client of a stream got when its server was stopped mid-reply."""

    events: list[WireEvent] = field(default_factory=list)
    cut: bool = False  # the connection ended without a complete HTTP response
    stop_at: float = 0.0
    drained: int | None = None  # streams the draining server ended (None: plain uvicorn)

    @property
    def last(self) -> str:
        if not self.events:
            return "nothing"
        last = self.events[-1]
        if last.kind == "error":
            return f"error event {last.code!r}"
        return f"a {last.kind} event" + (", then the connection was cut" if self.cut else "")


def stop_mid_stream(
    app: Any, server_class: type[uvicorn.Server], *, graceful_s: float = 0.5
) -> Shutdown:
    """Serve `app` with `server_class` in a thread, read three tokens, stop the server as
    SIGTERM would (`should_exit`), and record everything else the client received."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="critical",
        timeout_graceful_shutdown=graceful_s,
    )
    server = server_class(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    result = Shutdown()
    raw = bytearray()
    try:
        with (
            httpx.Client(timeout=5) as client,
            client.stream("POST", f"http://127.0.0.1:{port}/chat/stream", json=MESSAGE) as r,
        ):
            for chunk in r.iter_raw():
                raw += chunk
                if not result.stop_at and raw.count(b"data:") >= 3:
                    result.stop_at = time.monotonic()
                    server.should_exit = True
    except httpx.HTTPError:
        result.cut = True
    thread.join(10)
    result.events = [classify(e) for e in parse_sse(bytes(raw)) if isinstance(e, SSEEvent)]
    result.drained = getattr(server, "drained", None)
    return result


# --- the known traps ----------------------------------------------------------------------------


def first_chunk_then_leave(url: str, *, gzip: bool = False) -> float:
    """Milliseconds until the first decoded body bytes arrive; then the client leaves."""
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    started = time.monotonic()
    with (
        httpx.Client(timeout=10) as http,
        http.stream("POST", f"{url}/chat/stream", json=MESSAGE, headers=headers) as r,
    ):
        # iter_bytes undoes gzip: a compressed stream's first raw bytes are only its header.
        for chunk in r.iter_bytes():
            if chunk:
                return (time.monotonic() - started) * 1000
    raise AssertionError("the response had no body")


def health_wait_during_stream(url: str, mock: MockProviders) -> float:
    """Milliseconds a `GET /health` waits when sent 0.3 s into a 1.1 s stream."""
    mock.reset()
    mock.set_timing(token_interval_ms=15)
    waited: list[float] = []

    def probe() -> None:
        time.sleep(0.3)
        started = time.monotonic()
        httpx.get(f"{url}/health", timeout=10)
        waited.append((time.monotonic() - started) * 1000)

    prober = threading.Thread(target=probe)
    prober.start()
    ask(url)
    prober.join()
    return waited[0]
