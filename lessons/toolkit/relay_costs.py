"""Notebook 09's views of the relay benchmark: its stored results, as tables and bar charts.

`benchmarks/bench_relays.py` measures every relay side by side and writes
`benchmarks/results/relays.json`; these helpers read that file, so the notebook shows the
measurement it was given, labelled with when and where it was made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lessons.toolkit.display import PROJECT_ROOT, Table
from lessons.toolkit.timing import start_axes_at_zero

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "relays.json"

# The relays people write, against which the lesson relays are judged (the raw ones are limits).
PEERS = ("plain-sdk", "sse-starlette", "fastapi-native")
LIMITS = ("floor", "raw-forward", "raw-forward-aiohttp", "raw-parse")
LABELS = {
    "floor": "straight from the mock (the floor)",
    "raw-forward": "raw httpx, bytes forwarded",
    "raw-forward-aiohttp": "raw aiohttp, bytes forwarded",
    "raw-parse": "raw httpx, parsed and re-emitted",
    "plain-sdk": "AsyncOpenAI + StreamingResponse",
    "sse-starlette": "sse-starlette",
    "fastapi-native": "FastAPI's native EventSourceResponse",
    "nb01-chat-stream": "/chat/stream (notebook 01, the core)",
    "nb01-chat-events": "/chat/events (notebook 01, the core)",
    "nb02-relay": "/relay/stream (notebook 02)",
    "nb03-langchain": "/langchain/stream (notebook 03)",
    "nb05-resilient": "the resilient relay (notebook 05)",
    "nb07-service": "/chat/generations (notebook 07, in-process store)",
    "nb08-chat": "/api/chat (notebook 08, a chat turn)",
    "nb09-task-per-token": "a task per token (pitfall)",
    "nb09-fast": "the fast path (notebook 09)",
}

VARIANT_LABELS = {
    "aiohttp": "the SDK on aiohttp",
    "asyncio": "asyncio and h11",
    "uvloop": "uvloop and httptools",
    "2workers": "2 workers",
}


def label(relay: str) -> str:
    """A relay's name for a reader, its variants after it: `nb09-fast+2workers`."""
    base, *variants = relay.split("+")
    return ", ".join([LABELS.get(base, base), *(VARIANT_LABELS.get(v, v) for v in variants)])


METRICS = {
    "ttft_overhead_ms": ("first-token overhead, 1 stream", "ms", False),
    "tokens_per_s": ("tokens per second, 50 streams", "tokens/s", True),
    "cpu_us_per_token": ("CPU per token", "us", False),
    "cpu_ms_per_request": ("CPU per request", "ms", False),
    "first_p99_100_ms": ("p99 first token, 100 streams of 20 ms tokens", "ms", False),
    "memory_kb_per_stream": ("memory per open stream, 500 streams", "KB", False),
    "first_p50_10_ms": ("p50 first token, 10 streams", "ms", False),
    "first_p99_10_ms": ("p99 first token, 10 streams", "ms", False),
    "total_p99_10_ms": ("p99 whole reply, 10 streams", "ms", False),
    "first_p99_500_ms": ("p99 first token, 500 streams", "ms", False),
    "total_p99_500_ms": ("p99 whole reply, 500 streams", "ms", False),
    "busiest_worker_share": ("the busiest worker's share of the CPU", "of 1", False),
}


@dataclass(frozen=True)
class Results:
    measured: str
    machine: dict[str, Any]
    config: dict[str, Any]
    relays: dict[str, dict[str, float]]  # name -> median figures

    @property
    def label(self) -> str:
        m = self.machine
        return (
            f"STORED: measured {self.measured} by benchmarks/bench_relays.py on a {m['cpus']}-core "
            f"machine (Python {m['python']}), medians of {self.config['rounds']} rounds"
        )

    def figure(self, relay: str, metric: str) -> float:
        figures = self.relays[relay]
        if metric == "ttft_overhead_ms":
            return figures["ttft_1_ms"] - self.relays["floor"]["ttft_1_ms"]
        return figures[metric]

    def best_peer(self, metric: str) -> float:
        better_high = METRICS[metric][2]
        values = [self.figure(p, metric) for p in PEERS if p in self.relays]
        return max(values) if better_high else min(values)

    def ratio(self, relay: str, metric: str) -> float:
        """The relay's figure over the best peer's (below 1 is better, except for tokens/s)."""
        return self.figure(relay, metric) / self.best_peer(metric)


def load(path: Path = RESULTS) -> Results:
    data = json.loads(path.read_text())
    medians = {name: entry["median"] for name, entry in data["relays"].items()}
    return Results(data["measured"], data["machine"], data["config"], medians)


def table(results: Results, relays: list[str], metrics: list[str]) -> Table:
    headers = ["relay", *(f"{METRICS[m][0]} ({METRICS[m][1]})" for m in metrics)]
    rows = []
    for relay in relays:
        if relay not in results.relays:
            continue
        cells: list[object] = [label(relay)]
        for metric in metrics:
            no_relay = ("cpu_us_per_token", "cpu_ms_per_request", "memory_kb_per_stream")
            if relay == "floor" and metric in no_relay:
                cells.append("-")
                continue
            if metric not in results.relays[relay] and metric != "ttft_overhead_ms":
                cells.append("-")  # not measured for this relay (one worker has no share)
                continue
            value = results.figure(relay, metric)
            cells.append(
                f"{value:,.0f}"
                if abs(value) >= 100
                else f"{value:.2g}"
                if value < 1
                else f"{value:.1f}"
            )
        rows.append(cells)
    return Table(headers, rows, caption=results.label)


def ratios(results: Results, relays: list[str], metrics: list[str]) -> Table:
    headers = ["relay", *(f"{METRICS[m][0]}, x best peer" for m in metrics)]
    rows = [
        [label(r), *(f"{results.ratio(r, m):.2f}x" for m in metrics)]
        for r in relays
        if r in results.relays
    ]
    return Table(headers, rows, caption=results.label)


def bars(results: Results, relays: list[str], metric: str) -> Any:
    """One metric, one bar per relay: the limits grey, the peers blue, the lesson relays orange."""
    import matplotlib.pyplot as plt

    title, unit, _ = METRICS[metric]
    # The floor has no relay: no overhead, CPU or memory of its own to show.
    own = ("ttft_overhead_ms", "cpu_us_per_token", "cpu_ms_per_request", "memory_kb_per_stream")
    shown = [r for r in relays if r in results.relays and not (r == "floor" and metric in own)]
    values = [results.figure(r, metric) for r in shown]
    colours = ["0.6" if r in LIMITS else "tab:blue" if r in PEERS else "tab:orange" for r in shown]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(shown) + 1.2))
    ax.barh([label(r) for r in shown], values, color=colours)
    ax.invert_yaxis()
    ax.set_xlabel(f"{title} ({unit})")
    ax.set_title(f"{title}: grey the limits, blue the peers, orange the lesson relays", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    start_axes_at_zero(ax)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class Goal:
    """A figure a relay must reach: `relay`'s `metric` against `reference` (a relay, or the best
    peer), as a ratio at most or at least `bound`."""

    text: str
    relay: str
    metric: str
    bound: float
    at_least: bool = False
    reference: str = "best peer"

    def ratio(self, results: Results) -> float:
        if self.reference == "best peer":
            return results.ratio(self.relay, self.metric)
        return results.figure(self.relay, self.metric) / results.figure(self.reference, self.metric)

    def met(self, results: Results) -> bool:
        ratio = self.ratio(results)
        return ratio >= self.bound if self.at_least else ratio <= self.bound


RECOMMENDED = "nb01-chat-stream"
FAST = "nb09-fast"
GOALS = (
    Goal("recommended relay: first-token overhead", RECOMMENDED, "ttft_overhead_ms", 1.1),
    Goal("recommended relay: CPU per token", RECOMMENDED, "cpu_us_per_token", 1.1),
    Goal("recommended relay: p99 first token, 100 streams", RECOMMENDED, "first_p99_100_ms", 1.1),
    Goal("recommended relay: tokens per second", RECOMMENDED, "tokens_per_s", 1.0, True),
    Goal("fast path: tokens per second", FAST, "tokens_per_s", 4.0, True),
    Goal("fast path: tokens per second, against raw forwarding", FAST, "tokens_per_s", 0.8, True,
         "raw-forward"),
    Goal("fast path: CPU per request", FAST, "cpu_ms_per_request", 0.5),
)  # fmt: skip
MEMORY_LIMIT_KB = 50.0


def goals(results: Results) -> Table:
    """The benchmark's goals, each with its measured ratio and whether it was met."""
    rows: list[list[object]] = []
    for goal in GOALS:
        if goal.relay not in results.relays:
            continue
        sign = ">=" if goal.at_least else "<="
        rows.append(
            [goal.text, f"{sign} {goal.bound:g}x {goal.reference}",
             f"{goal.ratio(results):.3f}x", "met" if goal.met(results) else "NOT MET"]
        )  # fmt: skip
    lessons = [r for r in results.relays if r.startswith("nb") and "+" not in r]
    heaviest = max(lessons, key=lambda r: results.figure(r, "memory_kb_per_stream"))
    worst = results.figure(heaviest, "memory_kb_per_stream")
    rows.append(
        ["every lesson relay: memory per open stream", f"<= {MEMORY_LIMIT_KB:g} KB",
         f"{worst:.0f} KB ({label(heaviest)})", "met" if worst <= MEMORY_LIMIT_KB else "NOT MET"]
    )  # fmt: skip
    return Table(["goal", "bound", "measured", "verdict"], rows, caption=results.label)


def compare(results: Results, pairs: list[tuple[str, str, str]], metrics: list[str]) -> Table:
    """Each (question, relay, alternative): the alternative's figure over the relay's, per metric
    (below 1 the alternative is lower: better, except for tokens per second)."""
    headers = ["", *(f"{METRICS[m][0]}, alternative / relay" for m in metrics)]
    rows: list[list[object]] = []
    for question, relay, alternative in pairs:
        if relay in results.relays and alternative in results.relays:
            ratios_ = [results.figure(alternative, m) / results.figure(relay, m) for m in metrics]
            rows.append([question, *(f"{r:.2f}x" for r in ratios_)])
    return Table(headers, rows, caption=results.label)
