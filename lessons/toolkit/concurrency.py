"""Measure how a streaming relay serves concurrent clients, and whether a disconnect stops upstream.

Shared by notebook 02, its exercise checker and the tests, so that all three judge a relay the
same way. Two questions, each answered without fragile absolute timings:

- Are N concurrent streams served side by side, or one after another? `peak_overlap` counts how
  many streams were between their first and last token at the same moment: about N when the
  relay is concurrent, 1 or 2 when it serialises them, however loaded the machine is.
- Does a client's disconnect stop the provider? The mock providers observe whether the relay
  closed its upstream connection (`client_disconnected`) or let it run to the end (`completed`);
  `watch_after_disconnect` also samples, after the client left, how many tokens the provider had
  sent and how many server threads were still inside the relay's generator.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.providers import sdk_env_pointed_at
from lessons.toolkit.sse_parser import SSEEvent
from lessons.toolkit.testkit import classify, collect
from lessons.toolkit.timing import start_axes_at_zero


def token_text(event: SSEEvent) -> str | None:
    """The text of a token event in any of the wire contract's shapes, or None for others."""
    classified = classify(event)
    return classified.text if classified.kind == "token" and classified.text else None


@dataclass
class StreamRecord:
    """One client's view of one stream; times in ms since all requests were sent."""

    index: int
    status: int = 0
    first_token_ms: float | None = None
    last_token_ms: float | None = None
    finished_ms: float = 0.0
    tokens: list[str] = field(default_factory=list)
    token_ms: list[float] = field(default_factory=list)  # when each token arrived
    events: list[SSEEvent] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def ttft_ms(self) -> float:
        if self.first_token_ms is None:
            raise ValueError(f"stream {self.index} received no token (status {self.status})")
        return self.first_token_ms


@dataclass
class ConcurrencyRun:
    """N streams started at the same moment against one relay."""

    label: str
    concurrency: int
    streams: list[StreamRecord]
    wall_ms: float
    # How long a plain GET took while the streams were running (None: not probed).
    probe_ms: float | None = None

    @property
    def ttfts_ms(self) -> list[float]:
        return sorted(s.ttft_ms for s in self.streams)

    @property
    def median_ttft_ms(self) -> float:
        return statistics.median(self.ttfts_ms)

    @property
    def max_ttft_ms(self) -> float:
        return max(self.ttfts_ms)

    @property
    def peak_overlap(self) -> int:
        """The most streams that were mid-reply (first to last token) at the same moment."""
        edges: list[tuple[float, int]] = []
        for s in self.streams:
            if s.first_token_ms is None or s.last_token_ms is None:
                continue
            edges += [(s.first_token_ms, 1), (s.last_token_ms, -1)]
        # At equal times count the start first: touching intervals did overlap on the wire.
        edges.sort(key=lambda edge: (edge[0], -edge[1]))
        current = peak = 0
        for _, step in edges:
            current += step
            peak = max(peak, current)
        return peak

    @property
    def most_waited_for_a_whole_reply(self) -> bool:
        """True when most clients saw their first token only after another reply had ended.

        The median, not the slowest: one late first token can be load on a busy machine; most
        of them being late is a server that streams to one client at a time.
        """
        ends = [s.last_token_ms for s in self.streams if s.last_token_ms is not None]
        return self.concurrency > 1 and bool(ends) and self.median_ttft_ms >= min(ends)

    @property
    def served_one_after_another(self) -> bool:
        """True when the relay serialised the streams (at most half of them ever overlapped)."""
        return self.concurrency > 1 and self.peak_overlap <= self.concurrency // 2

    def summary(self) -> str:
        from lessons.toolkit.timing import fmt_ms

        text = (
            f"{self.label}, {self.concurrency} concurrent: median first token "
            f"{fmt_ms(self.median_ttft_ms)}, slowest {fmt_ms(self.max_ttft_ms)}, "
            f"all done in {fmt_ms(self.wall_ms)}"
        )
        if self.concurrency > 1:
            verdict = "one after another" if self.served_one_after_another else "side by side"
            text += f"; served {verdict}"
        return text


async def _one_stream(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    record: StreamRecord,
    t0: float,
    first_token: asyncio.Event,
    timeout_s: float,
) -> None:
    def seen(event: SSEEvent, arrival: float) -> None:
        text = token_text(event)
        if text is not None:
            now = (arrival - t0) * 1000
            if record.first_token_ms is None:
                record.first_token_ms = now
                first_token.set()
            record.last_token_ms = now
            record.tokens.append(text)
            record.token_ms.append(now)

    # The streaming test kit reads the stream; this module only keeps what it measures.
    got = await collect(url, body, client=client, timeout=timeout_s, on_event=seen)
    record.status = got.status
    if got.status != 200:
        return
    record.events = got.events
    record.finished_ms = ((got.finished_at or time.monotonic()) - t0) * 1000


async def measure_streams(
    base_url: str,
    path: str,
    body: dict[str, Any],
    concurrency: int,
    *,
    label: str = "",
    probe: str | None = None,
    read_timeout_s: float = 60.0,
) -> ConcurrencyRun:
    """Start `concurrency` identical streaming requests at once and time each one's tokens.

    With `probe` (a GET path such as "/openapi.json"), also time one ordinary request sent
    once the streams have started: a server whose event loop is blocked answers it late.
    """
    limits = httpx.Limits(max_connections=concurrency + 1, max_keepalive_connections=0)
    records = [StreamRecord(index=i) for i in range(concurrency)]
    probe_ms: list[float] = []
    first_token = asyncio.Event()

    async def probe_once(client: httpx.AsyncClient) -> None:
        await first_token.wait()
        sent = time.perf_counter()
        (await client.get(probe)).raise_for_status()  # type: ignore[arg-type]
        probe_ms.append((time.perf_counter() - sent) * 1000)

    async with httpx.AsyncClient(
        base_url=base_url, timeout=read_timeout_s, limits=limits
    ) as client:
        # time.monotonic(): the clock of the test kit's arrival times.
        t0 = time.monotonic()
        tasks = [
            _one_stream(client, path, body, r, t0, first_token, read_timeout_s) for r in records
        ]
        if probe is not None:
            tasks.append(probe_once(client))
        await asyncio.gather(*tasks)
        wall_ms = (time.monotonic() - t0) * 1000
    return ConcurrencyRun(
        label or path, concurrency, records, wall_ms, probe_ms[0] if probe_ms else None
    )


async def disconnect_after_first_token(
    base_url: str, path: str, body: dict[str, Any], *, read_timeout_s: float = 30.0
) -> str:
    """Read a stream until its first token, then hang up; returns that token's text."""
    got = await collect(
        base_url + path,
        body,
        timeout=read_timeout_s,
        stop_when=lambda event: token_text(event) is not None,
    )
    if got.status != 200:
        raise AssertionError(f"HTTP {got.status}: {got.raw[:200]!r}")
    if not got.stopped_early:
        raise AssertionError("the stream ended before its first token")
    return token_text(got.events[-1]) or ""


def upstream_after_disconnect(mock: Any, *, timeout: float = 10.0) -> Any:
    """The mock's observation of the newest request, once the mock has stopped streaming to it."""
    request = mock.last_request()
    mock.wait_until_finished(request, timeout=timeout)
    return mock.last_request()


def threads_inside(filename: str, function: str) -> int:
    """How many threads of this process are running `function` of the module file `filename`
    right now (for example a relay's generator, stepped by Starlette's threadpool)."""
    count = 0
    frames = sys._current_frames()
    for thread in threading.enumerate():
        frame = frames.get(thread.ident) if thread.ident is not None else None
        while frame is not None:
            code = frame.f_code
            if code.co_name == function and code.co_filename == filename:
                count += 1
                break
            frame = frame.f_back
    return count


@dataclass
class AfterDisconnect:
    """What happened after a client read the first token of a reply and left."""

    label: str
    first_token: str
    # (ms after the client left, tokens the provider had sent, threads inside the generator)
    samples: list[tuple[float, int, int]]
    outcome: str  # the mock's: client_disconnected (the relay closed it) or completed
    tokens_sent: int
    tokens_planned: int
    ended_ms: float  # when the provider's stream ended, in ms after the client left
    collected_at_ms: float | None = None  # when gc.collect() started, if it was asked to run
    collect_took_ms: float | None = None  # how long that full collection took


async def watch_after_disconnect(
    base_url: str,
    path: str,
    body: dict[str, Any],
    mock: Any,
    *,
    label: str = "",
    generator: tuple[str, str] | None = None,
    sample_at_ms: Sequence[float] = (100, 300),
    collect_garbage_at_ms: float | None = None,
    automatic_collection: bool = True,
    timeout_s: float = 10.0,
) -> AfterDisconnect:
    """Read the first token, leave, then watch the provider's side: at each `sample_at_ms`, the
    tokens it had sent and (with `generator=(module file, function name)`) the server threads
    inside that generator. With `collect_garbage_at_ms`, run `gc.collect()` at that moment (the
    server runs in this process, so this collects its garbage too); with
    `automatic_collection=False`, the cyclic collector runs only then (it is switched off for
    the measurement, and on again after). Returns once the provider's stream has ended."""
    was_enabled = gc.isenabled()
    if not automatic_collection:
        gc.disable()
    try:
        return await _watch(
            base_url,
            path,
            body,
            mock,
            label,
            generator,
            sample_at_ms,
            collect_garbage_at_ms,
            timeout_s,
        )
    finally:
        if was_enabled:
            gc.enable()


async def _watch(
    base_url: str,
    path: str,
    body: dict[str, Any],
    mock: Any,
    label: str,
    generator: tuple[str, str] | None,
    sample_at_ms: Sequence[float],
    collect_garbage_at_ms: float | None,
    timeout_s: float,
) -> AfterDisconnect:
    got = await collect(
        base_url + path,
        body,
        timeout=timeout_s,
        stop_when=lambda event: token_text(event) is not None,
    )
    if got.status != 200 or not got.stopped_early:
        raise AssertionError(f"no first token to leave at: {got.summary()}")
    first = token_text(got.events[-1]) or ""
    # The client hangs up as soon as this token arrives: times are counted from its arrival.
    left = got.arrivals[-1]
    samples: list[tuple[float, int, int]] = []
    moments: list[tuple[float, str]] = [(t, "sample") for t in sample_at_ms]
    if collect_garbage_at_ms is not None:
        moments.append((collect_garbage_at_ms, "collect"))
    collected_at: float | None = None
    collect_took: float | None = None
    # At the same moment, the sample first: it shows the state the collection starts from.
    for at_ms, what in sorted(moments, key=lambda moment: (moment[0], moment[1] != "sample")):
        await asyncio.sleep(max(0.0, left + at_ms / 1000 - time.monotonic()))
        now_ms = (time.monotonic() - left) * 1000
        if what == "collect":
            gc.collect()
            collected_at = now_ms
            collect_took = (time.monotonic() - left) * 1000 - now_ms
            continue
        inside = threads_inside(*generator) if generator is not None else 0
        samples.append((now_ms, mock.last_request().tokens_sent, inside))
    seen = await asyncio.to_thread(upstream_after_disconnect, mock, timeout=timeout_s)
    ended = seen.finished_at if seen.finished_at is not None else time.monotonic()
    return AfterDisconnect(
        label or path,
        first,
        samples,
        seen.outcome,
        seen.tokens_sent,
        seen.tokens_planned,
        (ended - left) * 1000,
        collected_at,
        collect_took,
    )


def plot_concurrency(runs: Sequence[ConcurrencyRun], *, title: str = "") -> Any:
    """Each request's time to first token, one line per relay, one panel per concurrency level
    above 1; a relay's run with one stream alone is drawn as a dashed reference line."""
    import matplotlib.pyplot as plt

    levels = sorted({run.concurrency for run in runs if run.concurrency > 1}) or [1]
    alone = {run.label: run.median_ttft_ms for run in runs if run.concurrency == 1}
    fig, axes = plt.subplots(1, len(levels), figsize=(4.8 * len(levels), 3.6), squeeze=False)
    for ax, level in zip(axes[0], levels, strict=True):
        for run in (r for r in runs if r.concurrency == level):
            (line,) = ax.plot(
                range(1, len(run.ttfts_ms) + 1), run.ttfts_ms, marker="o", ms=3, label=run.label
            )
            if run.label in alone and level > 1:
                ax.axhline(
                    alone[run.label],
                    linestyle="--",
                    linewidth=1,
                    color=line.get_color(),
                    label=f"{run.label}, 1 stream alone",
                )
        ax.set_title(f"{level} concurrent stream{'s' if level > 1 else ''}")
        ax.set_xlabel("request (sorted by first token)")
        ax.set_ylabel("time to first token (ms)")
        start_axes_at_zero(ax, x=False, y=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_request_timelines(runs: Sequence[ConcurrencyRun], *, title: str = "") -> Any:
    """One panel per run, one row per request, one tick per token as it reached its client:
    whether the replies streamed side by side or came one after another, each in a burst."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(runs), 1, figsize=(9, 1.2 + 0.16 * sum(r.concurrency for r in runs)), squeeze=False
    )
    right = max((max(s.token_ms, default=0) for r in runs for s in r.streams), default=0)
    for ax, run in zip(axes[:, 0], runs, strict=True):
        ordered = sorted(run.streams, key=lambda s: s.first_token_ms or float("inf"))
        for row, stream in enumerate(ordered):
            ax.scatter(stream.token_ms, [row] * len(stream.token_ms), marker="|", s=40)
        ax.set_yticks([])
        ax.set_ylabel("requests", fontsize=8)
        ax.set_title(f"{run.label}, {run.concurrency} concurrent streams", fontsize=9)
        ax.set_xlim(0, right * 1.03 + 1)
        start_axes_at_zero(ax)
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("milliseconds since the requests were sent")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_totals(runs: Sequence[ConcurrencyRun], *, title: str = "") -> Any:
    """Wall-clock time until every stream of a run had finished, per relay and level."""
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(run.label for run in runs))
    levels = sorted({run.concurrency for run in runs})
    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        totals = [
            next((r.wall_ms for r in runs if r.label == label and r.concurrency == n), 0)
            for n in levels
        ]
        ax.bar([x + i * width for x in range(len(levels))], totals, width, label=label)
    ax.set_xticks([x + width * (len(labels) - 1) / 2 for x in range(len(levels))], levels)
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("time until all finished (ms)")
    start_axes_at_zero(ax, x=False, y=True)
    ax.set_title(title or "Total time for all streams")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


@contextmanager
def private_mock(ttft_ms: float = 0, token_interval_ms: float = 0) -> Iterator[Any]:
    """A mock of one's own, with the SDK variables pointed at it while the block runs.

    For exercise checkers: they must not disturb the notebook's mock, and they restore the
    learner's environment afterwards. Start lesson apps inside the block: their lifespan reads
    the variables when it creates its clients.
    """
    from lessons.mock_providers import MockProviders

    mock = MockProviders(ttft_ms=ttft_ms, token_interval_ms=token_interval_ms)
    with BackgroundServer(mock.app) as server, sdk_env_pointed_at(server.url):
        yield mock


__all__ = [
    "AfterDisconnect",
    "ConcurrencyRun",
    "StreamRecord",
    "disconnect_after_first_token",
    "measure_streams",
    "plot_concurrency",
    "plot_request_timelines",
    "plot_totals",
    "private_mock",
    "threads_inside",
    "token_text",
    "upstream_after_disconnect",
    "watch_after_disconnect",
]
