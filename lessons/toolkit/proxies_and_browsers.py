"""Notebook 06's support code: dropped connections on demand, measurements stored for machines
without nginx or Chromium, and the notebook's plots. None of it is lesson code to copy.

- `CutAfterEvents`: ASGI middleware that ends each event stream after N events, as a network
  that drops the connection would, so that a client's reconnection can be watched and tested.
  A lesson app holds no test machinery; this wraps one from outside.
- `measured_or_stored`: runs a measurement where its tools are installed, else loads the copy
  stored in `notebooks/images/06_proxy_measurements.json`, saying when and where it was made.
  The file is written only when `WORKBOOK_STORE_MEASUREMENTS=1` is set.
- `plot_byte_arrivals`, `plot_stream_spans`: time axes from 0, in milliseconds.
- `lesson_servers()`: one mock and the lesson apps a test module needs, started once per module
  (the suite stays fast), with the SDK environment pointed at that mock meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import platform
import re
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.browser import StreamSpan, chromium_binary
from lessons.toolkit.nginx import nginx_version
from lessons.toolkit.providers import sdk_env_pointed_at
from lessons.toolkit.timing import start_axes_at_zero

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MEASUREMENTS_FILE = PROJECT_ROOT / "notebooks" / "images" / "06_proxy_measurements.json"
STORE_ENV = "WORKBOOK_STORE_MEASUREMENTS"

# --- dropped connections, on demand ---------------------------------------------------------------


class CutAfterEvents:
    """Ends every `text/event-stream` response after `after_events` events, as a dropped
    connection would: the client sees its stream end without a terminal event, and the app
    sees its client leave (an `http.disconnect`), exactly as if the network had failed.

    `mid_event=True` cuts inside the next event instead (half of it is sent, without the blank
    line that would complete it), the case a client must not mistake for a received event.
    `retry_ms` replaces the `retry:` value the app sends (a test need not wait the app's full
    reconnection delay). `last_event_ids` records the `Last-Event-ID` of every GET answered
    with an event stream, in order; `requests` counts every GET.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        after_events: int,
        mid_event: bool = False,
        retry_ms: int | None = None,
    ) -> None:
        if after_events < 1:
            raise ValueError("after_events must be at least 1")
        self.app = app
        self.after_events = after_events
        self.mid_event = mid_event
        self.retry_ms = retry_ms
        self.last_event_ids: list[str | None] = []
        self.requests = 0
        self.cuts = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        self.requests += 1
        last_id = dict(scope["headers"]).get(b"last-event-id")
        cut = asyncio.Event()
        stream = _CutStream(self, send, cut, last_id.decode("latin-1") if last_id else None)

        async def receive_until_cut() -> Message:
            if cut.is_set():
                return {"type": "http.disconnect"}
            message = asyncio.ensure_future(receive())
            cut_now = asyncio.ensure_future(cut.wait())
            try:
                await asyncio.wait({message, cut_now}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                cut_now.cancel()
                if not message.done():
                    message.cancel()
            if message.done() and not message.cancelled():
                return message.result()
            return {"type": "http.disconnect"}

        await self.app(scope, receive_until_cut, stream.send)


class _CutStream:
    """One response passing through `CutAfterEvents`."""

    def __init__(
        self, owner: CutAfterEvents, send: Send, cut: asyncio.Event, last_id: str | None
    ) -> None:
        self.owner = owner
        self.last_id = last_id
        self._send = send
        self.cut = cut
        self.is_stream = False
        self.events = 0
        self.pending = b""
        self.cutting = False  # counted enough events; cut inside the next one (mid_event)

    async def send(self, message: Message) -> None:
        if self.cut.is_set():
            return  # the "network" is gone: nothing more reaches the client
        if message["type"] == "http.response.start":
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
            self.is_stream = content_type.startswith(b"text/event-stream")
            if self.is_stream:
                self.owner.last_event_ids.append(self.last_id)
            await self._send(message)
            return
        if message["type"] != "http.response.body" or not self.is_stream:
            await self._send(message)
            return
        self.pending += message.get("body", b"")
        out = b""
        while (end := self.pending.find(b"\n\n")) != -1:
            block, self.pending = self.pending[: end + 2], self.pending[end + 2 :]
            if self.cutting:
                await self._end(out + block[: max(1, len(block) // 2)])
                return
            if block.startswith(b"retry:") and self.owner.retry_ms is not None:
                block = b"retry: %d\n\n" % self.owner.retry_ms
            out += block
            if re.search(rb"(^|\n)data:", block):
                self.events += 1
                if self.events >= self.owner.after_events:
                    if not self.owner.mid_event:
                        await self._end(out)
                        return
                    self.cutting = True
        if out:
            await self._send({"type": "http.response.body", "body": out, "more_body": True})
        if not message.get("more_body", False):
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _end(self, data: bytes) -> None:
        self.cut.set()
        self.owner.cuts += 1
        await self._send({"type": "http.response.body", "body": data, "more_body": False})


# --- servers shared by a test module -------------------------------------------------------------


class LessonServers:
    """A mock and the apps started against it, each app once, by name."""

    def __init__(self, mock: Any) -> None:
        self.mock = mock
        self._servers: dict[str, BackgroundServer] = {}

    def url(self, name: str, make_app: Callable[[], Any]) -> str:
        """The URL of the app called `name`, made and started by `make_app()` the first time."""
        if name not in self._servers:
            self._servers[name] = BackgroundServer(make_app()).start()
        return self._servers[name].url

    def app(self, name: str) -> Any:
        """The app started under `name` (to read its state: usage records, generations)."""
        return self._servers[name].app

    def stop(self) -> None:
        for server in reversed(list(self._servers.values())):
            server.stop()
        self._servers.clear()


@contextmanager
def lesson_servers() -> Iterator[LessonServers]:
    """A fresh mock for a test module, the SDK variables pointed at it while the block runs.

    Apps are started inside the block (their lifespans read the variables) and stopped at its end.
    Call `mock.reset()` between tests: rules, observations and timing start afresh.
    """
    from lessons.mock_providers import MockProviders

    mock = MockProviders(ttft_ms=0, token_interval_ms=0)
    saved = {name: os.environ.get(name) for name in ("NO_PROXY", "no_proxy", "OPENAI_MODEL")}
    with BackgroundServer(mock.app) as mock_server, sdk_env_pointed_at(mock_server.url):
        os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
        os.environ.pop("OPENAI_MODEL", None)
        servers = LessonServers(mock)
        try:
            yield servers
        finally:
            servers.stop()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


# --- measurements, or the stored copy ------------------------------------------------------------


def store_requested() -> bool:
    return os.environ.get(STORE_ENV) == "1"


def _chromium_version() -> str | None:
    binary = chromium_binary()
    if binary is None:
        return None
    try:
        found = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(\d+)\.\d+\.\d+\.\d+", found.stdout)
    return match[1] if match else None


def this_machine(*, nginx: bool = True, chromium: bool = False) -> str:
    """A description of where a measurement ran: system, cores, and the tools' versions."""
    parts = [f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores"]
    version = nginx_version() if nginx else None
    if version is not None:
        parts.append("nginx " + ".".join(map(str, version)))
    major = _chromium_version() if chromium else None
    if major is not None:
        parts.append(f"Chromium {major}")
    return ", ".join(parts)


@dataclass(frozen=True)
class Measured:
    """A measurement's values, and whether they were measured now or loaded from the file."""

    name: str
    values: dict[str, Any]
    stored: bool
    where: str
    when: str

    def describe(self) -> str:
        if self.stored:
            return (
                f"{self.name}: STORED measurement (this machine lacks the tools), made on "
                f"{self.when} on {self.where}"
            )
        return f"{self.name}: measured just now on this machine ({self.where})"


def _load() -> dict[str, Any]:
    if not MEASUREMENTS_FILE.exists():
        return {}
    loaded: dict[str, Any] = json.loads(MEASUREMENTS_FILE.read_text(encoding="utf-8"))
    return loaded


def measured_or_stored(
    name: str,
    measure: Callable[[], dict[str, Any]],
    *,
    available: bool,
    chromium: bool = False,
) -> Measured:
    """Run `measure()` when `available` (its tools are installed), else load the stored copy.

    With WORKBOOK_STORE_MEASUREMENTS=1, a fresh measurement replaces the stored one (with the
    date and a description of the machine), for learners whose machines lack nginx or Chromium.
    """
    if not available:
        stored = _load().get(name)
        if stored is None:
            raise RuntimeError(f"no stored measurement named {name!r}: run where the tools are")
        return Measured(name, stored["values"], True, stored["where"], stored["when"])
    values = measure()
    where = this_machine(chromium=chromium)
    when = datetime.date.today().isoformat()
    if store_requested():
        everything = _load()
        everything[name] = {"when": when, "where": where, "values": values}
        MEASUREMENTS_FILE.write_text(json.dumps(everything, indent=1) + "\n", encoding="utf-8")
    return Measured(name, values, False, where, when)


def rounded(times_ms: Sequence[float]) -> list[float]:
    """Times kept to 0.1 ms, enough for any plot and a tenth of the file."""
    return [round(t, 1) for t in times_ms]


# --- plots ----------------------------------------------------------------------------------------


def plot_byte_arrivals(
    series: Mapping[str, Sequence[Sequence[float]]],
    *,
    title: str,
    marks: Mapping[str, float] | None = None,
) -> Any:
    """How much of the body had arrived when: one step line per series of (ms, bytes) pieces.

    `marks` draws vertical lines at named moments (for example when the provider finished).
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.6))
    for label, chunks in series.items():
        times = [0.0] + [float(t) for t, _ in chunks]
        total, sizes = 0.0, [0.0]
        for _, size in chunks:
            total += size / 1024
            sizes.append(total)
        ax.step(times, sizes, where="post", label=label, linewidth=1.8)
    for label, at in (marks or {}).items():
        ax.axvline(at, color="grey", linestyle=":", linewidth=1.2)
        ax.annotate(
            label,
            (at, 0),
            xytext=(4, 6),
            textcoords="offset points",
            rotation=90,
            va="bottom",
            color="dimgrey",
        )
    ax.set_xlabel("milliseconds since the request was sent")
    ax.set_ylabel("body received (KB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    start_axes_at_zero(ax, y=True)
    fig.tight_layout()
    return fig


def plot_stream_spans(panels: Mapping[str, Sequence[StreamSpan]], *, title: str) -> Any:
    """One panel per setup, one row per EventSource: a thin line while it waits for a
    connection, a thick bar from its first token to its end."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(
        len(panels), 1, figsize=(9, 1.4 + 1.9 * len(panels)), sharex=True, squeeze=False
    )
    for ax, (label, spans) in zip(axes[:, 0], panels.items(), strict=True):
        for row, span in enumerate(spans):
            opened = span.first_token_ms if span.first_token_ms is not None else span.opened_ms
            if opened is None:
                continue
            ax.plot([span.created_ms, opened], [row, row], color="grey", linewidth=1)
            end = span.done_ms if span.done_ms is not None else opened
            ax.plot([opened, end], [row, row], linewidth=6, solid_capstyle="butt")
        ax.set_yticks(range(len(spans)), [f"stream {i + 1}" for i in range(len(spans))])
        ax.invert_yaxis()
        ax.set_title(label, fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3)
        start_axes_at_zero(ax)
    axes[-1, 0].set_xlabel("milliseconds since the page sent its requests")
    axes[0, 0].legend(
        [Line2D([], [], color="grey", linewidth=1), Line2D([], [], color="black", linewidth=6)],
        ["asked for, not open yet", "open: first token to done"],
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncols=2,
        frameon=False,
        fontsize=8,
    )
    fig.suptitle(title)
    fig.tight_layout()
    return fig


__all__ = [
    "MEASUREMENTS_FILE",
    "STORE_ENV",
    "CutAfterEvents",
    "LessonServers",
    "Measured",
    "lesson_servers",
    "measured_or_stored",
    "plot_byte_arrivals",
    "plot_stream_spans",
    "rounded",
    "store_requested",
    "this_machine",
]
