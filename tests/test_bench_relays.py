"""The relay benchmark runs (one quick configuration), so it cannot rot between real runs.

The figures of a quick run on a busy machine mean little; the bounds here only catch a broken
design: the core costing several times the plain relay per token, or the fast path not faster.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RELAYS = ["plain-sdk", "nb01-chat-stream", "nb09-fast"]


def test_a_quick_run_measures_every_figure_for_every_relay(tmp_path: Path) -> None:
    out = tmp_path / "relays.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_relays.py", "run", "--quick",
         "--relays", ",".join(RELAYS), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.read_text())
    assert set(data["relays"]) == {"floor", *RELAYS}
    for name in RELAYS:
        figures = data["relays"][name]["median"]
        assert figures["tokens_per_s"] > 0 and figures["ttft_1_ms"] > 0, (name, figures)
        assert figures["cpu_us_per_token"] > 0 and figures["memory_kb_per_stream"] > 0
    plain, core, fast = (data["relays"][n]["median"] for n in RELAYS)
    assert core["cpu_us_per_token"] < 3 * plain["cpu_us_per_token"], (core, plain)
    assert fast["tokens_per_s"] > plain["tokens_per_s"], (fast, plain)
    assert "relay" in result.stdout and "vs best peer" in result.stdout


def test_the_client_counts_events_whatever_their_line_endings() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_relays import blank_lines

    lf = b'1c\r\ndata: {"token":"a"}\n\n\r\n1c\r\ndata: {"token":"b"}\n\n\r\n0\r\n\r\n'
    crlf = b'1e\r\ndata: {"token":"a"}\r\n\r\n\r\n0\r\n\r\n'
    # Two events and the last chunk; one event and the last chunk (sse-starlette's CR LF).
    assert blank_lines(lf) == 3 and blank_lines(crlf) == 2


def test_an_unknown_relay_stops_the_run_before_anything_is_measured(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_relays.py", "run", "--quick", "--relays",
         "plain-sdk+2workers", "--out", str(tmp_path / "relays.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0 and "needs a lesson relay" in result.stderr
    assert "measuring" not in result.stdout
