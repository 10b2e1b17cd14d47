"""nbval is not decoration: when the mock replies differently, the notebook check fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "00_start_here.ipynb"


def run_nbval(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **extra_env}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-q",
            "--nbval",
            "--nbval-current-env",
            "--nbval-sanitize-with",
            str(ROOT / "notebooks" / "nbval_sanitize.cfg"),
            str(NOTEBOOK),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


def test_a_changed_mock_reply_fails_the_notebook_check() -> None:
    result = run_nbval({"WORKBOOK_MOCK_PERTURB": "1"})
    assert result.returncode != 0, "nbval passed although the mock's replies changed"
    # It failed for the right reason: a stored streamed text no longer matches.
    assert "PERTURBED" in result.stdout, result.stdout[-3000:]
