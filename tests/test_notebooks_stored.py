"""Stored notebook outputs are what learners read before running anything and what nbval compares:
every code cell executed in order, no errors, no warnings, no paths of the machine that ran it."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# The checkout's own location, plus the usual homes and temp dirs on Linux, macOS and Windows.
MACHINE_PATH = re.compile(
    "|".join(
        [re.escape(str(ROOT)), r"/home/\w+", r"/Users/\w+", "/root/", "/tmp/", r"[A-Z]:\\Users"]
    )
)


def code_cells(path: Path) -> list[nbformat.NotebookNode]:
    notebook = nbformat.read(path, as_version=4)
    return [c for c in notebook.cells if c.cell_type == "code" and c.source.strip()]


def output_text(output: nbformat.NotebookNode) -> str:
    if "text" in output:
        return str(output["text"])
    data = output.get("data", {})
    return "\n".join(str(v) for k, v in data.items() if k.startswith("text/"))


def test_every_objective_has_a_notebook() -> None:
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{n:02d}" for n in range(10)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_code_cell_was_executed_in_order(path: Path) -> None:
    counts = [cell.execution_count for cell in code_cells(path)]
    assert None not in counts, f"{path.name}: unexecuted cells (nbval would compare nothing there)"
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: not run top to bottom once"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_are_clean(path: Path) -> None:
    for number, cell in enumerate(code_cells(path), start=1):
        for output in cell.get("outputs", []):
            where = f"{path.name}, code cell {number}"
            assert output.output_type != "error", f"{where}: stored error {output.get('ename')}"
            assert output.get("name") != "stderr", f"{where}: stderr output: {output_text(output)}"
            assert not MACHINE_PATH.search(output_text(output)), f"{where}: names a machine path"
