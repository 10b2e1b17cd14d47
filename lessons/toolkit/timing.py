"""Timing helpers and token-arrival timelines for notebooks, formatted so nbval can mask them."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Every timing a notebook prints goes through fmt_ms / fmt_ratio, whose shapes the sanitizer
# in notebooks/nbval_sanitize.cfg masks: stored outputs stay readable yet comparable.


def fmt_ms(milliseconds: float) -> str:
    return f"{milliseconds:,.0f} ms" if milliseconds >= 10 else f"{milliseconds:.1f} ms"


def fmt_ratio(ratio: float) -> str:
    return f"{ratio:.1f}x"


@dataclass
class Arrivals:
    """When each piece of a reply arrived, in milliseconds since the request was sent."""

    label: str
    started: float = field(default_factory=time.perf_counter)
    times_ms: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    finished_ms: float | None = None

    def mark(self, text: str = "") -> None:
        self.times_ms.append((time.perf_counter() - self.started) * 1000)
        self.texts.append(text)

    def finish(self) -> None:
        self.finished_ms = (time.perf_counter() - self.started) * 1000

    @property
    def first_ms(self) -> float:
        if not self.times_ms:
            raise ValueError(f"{self.label}: nothing arrived")
        return self.times_ms[0]

    @property
    def total_ms(self) -> float:
        return self.finished_ms if self.finished_ms is not None else self.times_ms[-1]

    @property
    def text(self) -> str:
        return "".join(self.texts)


def start_axes_at_zero(ax: Any, *, x: bool = True, y: bool = False) -> None:
    """A time axis starts at 0: the wait before the first event is what these plots show."""
    if x:
        ax.set_xlim(left=0)
    if y:
        ax.set_ylim(bottom=0)


def plot_timelines(
    series: Sequence[Arrivals] | Mapping[str, Sequence[float]],
    *,
    title: str = "When each token reached the client",
    xlabel: str = "milliseconds since the request was sent",
):
    """One row per series, one tick per arriving token: seen at a glance, not read."""
    import matplotlib.pyplot as plt

    rows = (
        [(s.label, s.times_ms) for s in series]
        if not isinstance(series, Mapping)
        else list(series.items())
    )
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.7 * len(rows)))
    for row, (_label, times) in enumerate(rows):
        ax.scatter(times, [row] * len(times), marker="|", s=300, linewidths=1.5)
        if times:
            ax.annotate(
                "first", (times[0], row), xytext=(0, 12), textcoords="offset points", ha="center"
            )
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    start_axes_at_zero(ax)
    fig.tight_layout()
    return fig
