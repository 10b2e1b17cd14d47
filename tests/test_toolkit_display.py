"""The toolkit's display helpers: tables render as tables, every time axis starts at 0."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from lessons.toolkit.concurrency import (
    ConcurrencyRun,
    StreamRecord,
    plot_concurrency,
    plot_totals,
)
from lessons.toolkit.display import show_table
from lessons.toolkit.timing import Arrivals, plot_timelines


def test_a_table_is_html_in_the_lab_and_aligned_text_for_nbval() -> None:
    table = show_table(["fault", "client receives"], [["429", "HTTP 429 <json>"], ["drop", "x"]])
    assert table._repr_html_().startswith("<table><thead><tr><th>fault</th>")
    assert "&lt;json&gt;" in table._repr_html_()
    assert repr(table).splitlines() == [
        "fault  client receives",
        "-----  ---------------",
        "429    HTTP 429 <json>",
        "drop   x",
    ]


def test_timelines_start_at_zero_whatever_the_first_arrival() -> None:
    late = Arrivals("late")
    late.times_ms = [900.0, 950.0]
    ax = plot_timelines([late]).axes[0]
    assert ax.get_xlim()[0] == 0


def test_concurrency_plots_start_at_zero_in_milliseconds() -> None:
    streams = [StreamRecord(index=i, first_token_ms=400.0 + i, last_token_ms=800.0) for i in (0, 1)]
    run = ConcurrencyRun(label="async", concurrency=2, streams=streams, wall_ms=900.0)
    for fig in (plot_concurrency([run]), plot_totals([run])):
        ax = fig.axes[0]
        assert ax.get_ylim()[0] == 0 and "(ms)" in ax.get_ylabel()
