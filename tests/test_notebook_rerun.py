"""Re-running every cell of a notebook a second time in the same kernel works: background servers
are replaced, not duplicated, and nothing depends on running only once."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def test_start_here_runs_twice_in_one_kernel() -> None:
    notebook = nbformat.read(ROOT / "notebooks" / "00_start_here.ipynb", as_version=4)
    twice = copy.deepcopy(notebook)
    twice.cells = copy.deepcopy(notebook.cells) + copy.deepcopy(notebook.cells)
    client = NotebookClient(
        twice,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [
        output
        for cell in twice.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
