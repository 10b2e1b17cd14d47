"""Checkers for notebook 06's exercises: an nginx location block, a reader that resumes like
EventSource, and when a browser opens streams it must queue."""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.exercises import NotYet
from lessons.toolkit.nginx import nginx_available, run_nginx
from lessons.toolkit.proxies_and_browsers import CutAfterEvents, lesson_servers
from lessons.toolkit.sse_parser import parse_sse

# --- streaming_location -----------------------------------------------------------------------

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(value: str) -> float | None:
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value)
    if not match:
        return None
    return int(match[1]) * _UNITS[match[2] or "s"]


def _directives(block: str) -> tuple[str, list[str], dict[str, list[list[str]]]]:
    """The location's path arguments and its directives (name -> list of argument lists)."""
    text = re.sub(r"#[^\n]*", "", block).strip()
    match = re.fullmatch(r"location\s+([^{]*?)\s*\{(.*)\}", text, flags=re.S)
    if not match:
        raise NotYet("return one `location ... { ... }` block (nothing before or after it)")
    args = match[1].split()
    body = match[2]
    if "{" in body or "}" in body:
        raise NotYet("keep it to one location block without nested blocks")
    found: dict[str, list[list[str]]] = {}
    for statement in body.split(";"):
        words = statement.split()
        if words:
            found.setdefault(words[0], []).append(words[1:])
    if body.strip() and not body.strip().endswith(";"):
        raise NotYet("every directive ends with a semicolon `;`")
    return match[0], args, found


def _check_statically(block: str) -> None:
    _, args, found = _directives(block)
    path = args[-1] if args else ""
    modifier = args[0] if len(args) == 2 else ""
    if modifier not in ("", "=", "^~") or not (
        path == "/chat/stream" or (modifier != "=" and "/chat/stream".startswith(path))
    ):
        raise NotYet(f"the location `{' '.join(args)}` does not match /chat/stream")
    if found.get("proxy_pass") != [["http://relay"]]:
        raise NotYet(
            "proxy to the upstream with exactly `proxy_pass http://relay;` (a URI after the "
            "host, such as http://relay/, would rewrite the request path)"
        )
    if found.get("proxy_buffering") != [["off"]]:
        raise NotYet(
            "nginx buffers proxied responses by default; without `proxy_buffering off;` a "
            "client gets every token at once unless the app remembers X-Accel-Buffering: no"
        )
    if found.get("proxy_http_version") != [["1.1"]]:
        raise NotYet(
            "nginx talks HTTP/1.0 to the upstream by default: one new connection per request. "
            "Add `proxy_http_version 1.1;`"
        )
    headers = {a[0].lower(): a[1:] for a in found.get("proxy_set_header", []) if a}
    if headers.get("connection") not in ([""], ['""'], ["''"]):
        raise NotYet(
            'with HTTP/1.1, also clear the Connection header (`proxy_set_header Connection "";`)'
            ", or nginx sends `Connection: close` and the upstream keep-alive never happens"
        )
    for value in found.get("proxy_read_timeout", []):
        seconds = _seconds(value[0]) if value else None
        if seconds is None or seconds < 60:
            raise NotYet(
                f"proxy_read_timeout {' '.join(value)} is shorter than nginx's default 60s: a "
                "model that thinks for a while would have its stream cut"
            )
    if found.get("gzip") == [["on"]] and found.get("proxy_buffering") != [["off"]]:
        raise NotYet("gzip on a buffered stream: turn buffering off")


async def _slow_events(request: Request) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        for number in range(8):
            yield f"data: {json.dumps({'token': f't{number} ', 'done': False})}\n\n"
            await asyncio.sleep(0.04)
        yield f"data: {json.dumps({'token': '', 'done': True})}\n\n"

    # Deliberately no X-Accel-Buffering: the block itself must make nginx stream.
    return StreamingResponse(events(), media_type="text/event-stream")


def _check_with_nginx(block: str) -> None:
    """Run the block in a real nginx in front of a slow stream; tokens must arrive spread out."""
    import httpx

    upstream_app = Starlette(routes=[Route("/chat/stream", _slow_events, methods=["POST"])])
    with BackgroundServer(upstream_app) as upstream:
        try:
            proxy_cm = run_nginx(upstream.url, block)
            proxy = proxy_cm.__enter__()
        except RuntimeError as exc:
            raise NotYet(f"nginx refused the config: {exc}") from None
        try:
            started = time.perf_counter()
            arrivals: list[float] = []
            raw = ""
            with httpx.stream("POST", f"{proxy.url}/chat/stream", json={}, timeout=10) as resp:
                if resp.status_code != 200:
                    raise NotYet(f"a POST to /chat/stream through nginx got {resp.status_code}")
                for chunk in resp.iter_text():
                    arrivals.append(time.perf_counter() - started)
                    raw += chunk
        finally:
            proxy_cm.__exit__(None, None, None)
    events = [json.loads(e.data) for e in parse_sse(raw)]
    if not events or events[-1] != {"token": "", "done": True}:
        raise NotYet("the stream did not arrive whole through nginx")
    if arrivals[0] > 0.6 * arrivals[-1]:
        raise NotYet("through nginx, the first token arrived only with the last: still buffered")


def check_streaming_location(streaming_location: Callable[[], str]) -> None:
    block = streaming_location()
    if not isinstance(block, str):
        raise NotYet(f"return the block as a str, not {type(block).__name__}")
    _check_statically(block)
    # Where nginx is installed, the block also has to work for real.
    if nginx_available():
        _check_with_nginx(block)


# --- resume_reply ---------------------------------------------------------------------------------

PROMPT = {"message": "Explain streaming in one paragraph."}
# The canned reply to PROMPT streams 93 tokens: 96 events with start, usage and done.
EVENTS = 96
READ_TIMEOUT_S = 10.0
# A reply of 96 events cut every 7 needs 14 connections; far more means a reader going round.
RUNAWAY_REQUESTS = 40


def _call_bounded(
    read_reply: Callable[..., Any], cutters: list[CutAfterEvents], *args: Any, **kwargs: Any
) -> Any:
    """Call the learner's reader in a thread, so that one that never stops cannot hang the cell:
    give up after READ_TIMEOUT_S, or as soon as it has sent RUNAWAY_REQUESTS more GETs."""
    result: list[Any] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(read_reply(*args, **kwargs))
        except BaseException as exc:
            error.append(exc)

    def sent() -> int:
        return sum(c.requests for c in cutters)

    worker = threading.Thread(target=run, name="read-reply-check", daemon=True)
    before, deadline = sent(), time.monotonic() + READ_TIMEOUT_S
    worker.start()
    while worker.is_alive() and time.monotonic() < deadline:
        if sent() - before > RUNAWAY_REQUESTS:
            raise NotYet(
                f"read_reply sent more than {RUNAWAY_REQUESTS} GETs for one reply: it reconnects "
                "without end. Does it send Last-Event-ID, and stop at a 204?"
            )
        worker.join(0.02)
    if worker.is_alive():
        raise NotYet(
            f"read_reply did not return within {READ_TIMEOUT_S:g} s: does it stop at the terminal "
            "event, and at a 204?"
        )
    if error:
        raise error[0]
    return result[0]


def _start(client: httpx.Client, url: str) -> str:
    started = client.post(f"{url}/chat/generations", json=PROMPT)
    started.raise_for_status()
    return f"{url}{started.json()['events']}"


def check_resume_reply(read_reply: Callable[..., Any]) -> None:
    from lessons.mock_providers import Fault
    from lessons.proxy_browser import resumable

    clean = CutAfterEvents(resumable.create_app(), after_events=7)
    halves = CutAfterEvents(resumable.create_app(), after_events=7, mid_event=True)
    whole = CutAfterEvents(resumable.create_app(), after_events=10_000)  # never cuts
    cutters = [clean, halves, whole]
    with lesson_servers() as servers, httpx.Client(timeout=5) as client:
        mock = servers.mock

        def read(*args: Any, **kwargs: Any) -> Any:
            return _call_bounded(read_reply, cutters, client, *args, **kwargs)

        urls = {
            name: servers.url(name, lambda app=app: app)
            for name, app in [("clean", clean), ("halves", halves), ("whole", whole)]
        }

        # 1. No drop: the whole text, in one connection.
        text = read(_start(client, urls["whole"]))
        reply = mock.last_request().reply_text
        if not isinstance(text, str):
            raise NotYet(f"return the reply's text as a str, not {type(text).__name__}")
        if text != reply:
            raise NotYet(f"with no drop, expected the reply {reply[:40]!r}..., got {text[:60]!r}")
        if whole.requests != 1:
            raise NotYet(
                f"{whole.requests} GETs for a stream that was never cut: stop at its terminal "
                "event (a reconnect after it is a wasted request)"
            )

        # 2. The connection drops every 7 events, between events.
        events = _start(client, urls["clean"])
        try:
            text = read(events)
        except NotYet:
            if clean.last_event_ids[1:2] == [None]:
                raise NotYet(
                    "after the drop, read_reply reconnected without Last-Event-ID, so the "
                    "server started again from the first event, and again, ..."
                ) from None
            raise
        sent = clean.last_event_ids
        expected_ids = [None] + [str(n) for n in range(7, EVENTS, 7)]
        if sent == [None]:
            raise NotYet(
                "the connection dropped after 7 events without a terminal event, and read_reply "
                "did not reconnect: a drop is not the end of the reply"
            )
        if sent != expected_ids:
            raise NotYet(
                "after each drop, reconnect with Last-Event-ID set to the id of the last event "
                f"received: expected {expected_ids[:4]}..., sent {sent[:4]}..."
            )
        if text != reply:
            raise NotYet(
                f"the connection dropped every 7 events and the text came back as {text[:80]!r}"
            )

        # 3. The drop cuts an event in half: its id line arrived, the event did not.
        text = read(_start(client, urls["halves"]))
        if halves.last_event_ids[:2] != [None, "7"]:
            raise NotYet(
                "an event cut in half by the drop was counted as received: the first reconnect "
                f"sent Last-Event-ID {halves.last_event_ids[1:2]}, but event 8 never arrived "
                "whole (an event is received at its blank line, not at its `id:` line)"
            )
        if text != reply:
            raise NotYet(f"with events cut in half, the text came back as {text[:80]!r}...")

        # 4. Resuming where a reader left off, and after the very end (204).
        events = _start(client, urls["whole"])
        read(events)  # let the generation finish
        # Event 1 is `start`, events 2 to 94 the tokens: after event 5 come tokens 5 onwards.
        after_five = "".join(reply_tokens(client, events)[4:])
        text = read(events, last_event_id="5")
        if text != after_five:
            raise NotYet(
                "read_reply(..., last_event_id='5') must return only the text after event 5: "
                f"expected {after_five[:40]!r}..., got {text[:40]!r}..."
            )
        text = read(events, last_event_id=str(EVENTS))
        if text != "":
            raise NotYet(f"after the last event the server answers 204: return '', not {text!r}")

        # 5. A reply that fails midway ends with an error event: that is the end, too.
        mock.script(fault=Fault.error_event(after_tokens=3, kind="server_error"))
        before = whole.requests
        events = _start(client, urls["whole"])
        text = read(events)
        if whole.requests - before != 1:
            raise NotYet("after the terminal `error` event, stop: do not reconnect")
        if text != "".join(reply_tokens(client, events)):
            raise NotYet(f"keep the text that arrived before the error, got {text!r}")


def reply_tokens(client: httpx.Client, events: str) -> list[str]:
    """The text of each token event of a finished generation, read by the checker itself."""
    from lessons.relay_core import read_event

    response = client.get(events)
    return [
        wire.text
        for wire in (read_event(e.event, e.data) for e in parse_sse(response.text) if e.data)
        if wire.kind == "token"
    ]


# --- open_times -----------------------------------------------------------------------------------


def _reference_open_times(durations_ms: list[float], limit: int) -> list[float]:
    """The checker's own model: a queue in request order, served by `limit` connections."""
    free_at = [0.0] * min(limit, max(len(durations_ms), 1))
    opened = []
    for duration in durations_ms:
        slot = min(range(len(free_at)), key=free_at.__getitem__)
        opened.append(free_at[slot])
        free_at[slot] += duration
    return opened


CASES: list[tuple[list[float], int, str]] = [
    ([1000.0] * 7, 6, "seven equal streams over HTTP/1.1: the seventh waits for the first end"),
    ([300.0, 100.0, 200.0], 2, "the first stream to end frees a connection, not the first one"),
    ([500.0, 100.0, 100.0, 100.0], 2, "a long stream holds its connection; the others share one"),
    ([1000.0, 1000.0, 10.0, 10.0], 2, "two waiting streams open at the same moment"),
    ([100.0] * 7, 128, "HTTP/2: nginx allows 128 streams on one connection, none waits"),
    ([100.0, 250.0, 50.0], 1, "one connection: each waits for all before it"),
    ([], 6, "no streams at all"),
    ([120.0, 80.0, 80.0, 200.0, 50.0, 90.0, 30.0, 60.0, 10.0], 3, "nine streams, three slots"),
]


def check_open_times(open_times: Callable[[list[float], int], Any]) -> None:
    for durations, limit, what in CASES:
        got = open_times(list(durations), limit)
        expected = _reference_open_times(durations, limit)
        try:
            values = [float(v) for v in got]
        except (TypeError, ValueError):
            raise NotYet(f"return a list of numbers, not {got!r}") from None
        if len(values) != len(expected) or not all(
            math.isclose(a, b, abs_tol=1e-6) for a, b in zip(values, expected, strict=False)
        ):
            raise NotYet(
                f"{what}: open_times({durations}, limit={limit}) should be {expected}, got {values}"
            )
