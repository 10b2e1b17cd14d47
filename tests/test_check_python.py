"""make's first step refuses a Python the lock cannot install on, and says what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lessons.toolkit.check_python import problem

SCRIPT = Path(__file__).resolve().parents[1] / "lessons" / "toolkit" / "check_python.py"


def test_debian_12s_python_is_refused_with_a_way_out() -> None:
    message = problem((3, 11, 2))
    assert message is not None
    assert "3.11.2" in message and "3.11.5" in message and "PYTHON=python3.12" in message


def test_supported_pythons_pass() -> None:
    assert problem((3, 11, 5)) is None
    assert problem((3, 13, 0)) is None


def test_the_script_runs_with_the_standard_library_alone() -> None:
    # -I: isolated, -S: no site-packages; what make runs before .venv exists.
    result = subprocess.run([sys.executable, "-I", "-S", str(SCRIPT)], capture_output=True)
    assert result.returncode == 0, result.stderr


def test_the_makefile_runs_the_check_before_creating_the_venv() -> None:
    makefile = (SCRIPT.parents[2] / "Makefile").read_text()
    recipe = makefile.split("$(BIN)/python:", 1)[1].split("\n\n", 1)[0]
    assert "lessons/toolkit/check_python.py" in recipe.splitlines()[1]
