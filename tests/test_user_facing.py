"""What a learner reads stands alone, plots start at zero, and exercises are not answered above.

These hold the learner's pass over every notebook: a file the reader does not have is never
cited, a time axis never crops the wait it exists to show, and no exercise's solution is in code
the notebook displayed before asking for it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lessons.toolkit.exercises import _BEGIN, _END, all_exercises

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
USER_FACING = [
    *NOTEBOOKS,
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    *sorted((ROOT / "lessons").rglob("*.py")),
    *sorted((ROOT / "lessons").rglob("*.html")),
    *sorted((ROOT / "lessons").rglob("*.md")),
    *sorted((ROOT / "solutions").rglob("*.py")),
]
NEVER_CITED = re.compile(r"\.\./shared|CONTRACTS\.md|original (lesson|tutorial)", re.IGNORECASE)


@pytest.mark.parametrize("path", USER_FACING, ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_a_user_reads_cites_what_they_do_not_have(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = sorted({m.group(0) for m in NEVER_CITED.finditer(text)})
    assert not found, f"{path.relative_to(ROOT)} cites {found}"


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell.get("source", ""))


PLOTS = re.compile(r"\.(scatter|plot|bar|barh|hist|step|hlines|vlines|broken_barh)\(")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_plot_drawn_in_a_notebook_starts_its_axes_at_zero(path: Path) -> None:
    """A cell that draws with matplotlib itself (not through a toolkit plot helper, which is
    tested to do it) sets its axes to start at 0."""
    for index, cell in enumerate(cells(path)):
        code = source(cell)
        if cell["cell_type"] == "code" and PLOTS.search(code):
            assert (
                "start_axes_at_zero" in code
                or "set_xlim(left=0" in code
                or "set_ylim(bottom=0" in code
            ), f"{path.name} cell {index} draws a plot whose axes may not start at 0"


def significant_lines(code: str) -> list[str]:
    """The lines of a solution that carry its idea: no blank lines, comments, docstrings,
    signatures, bare returns or punctuation."""
    lines = []
    in_docstring = False
    for raw in code.splitlines():
        line = raw.strip()
        if line.startswith(('"""', "'''")):
            in_docstring = (
                not (len(line) > 3 and line.endswith(('"""', "'''"))) and not in_docstring
            )
            continue
        if in_docstring or not line or line.startswith(("#", "def ", "async def ", "@")):
            continue
        if len(line) < 12 or line in ("return", "pass", ")", "]", "}"):
            continue
        lines.append(line)
    return lines


def solution_body(solution_source: str) -> str:
    """Only what the learner writes: the lines between BEGIN and END SOLUTION."""
    out, inside = [], False
    for line in solution_source.splitlines():
        if line.strip() == _BEGIN:
            inside = True
        elif line.strip() == _END:
            inside = False
        elif inside:
            out.append(line)
    return "\n".join(out)


def displayed_code_before(path: Path, tag: str) -> str:
    """The code a notebook showed (its code cells and what show_source displayed) before the
    cell tagged `tag`."""
    shown: list[str] = []
    for cell in cells(path):
        if tag in cell.get("metadata", {}).get("tags", []):
            return "\n".join(shown)
        if cell["cell_type"] != "code":
            continue
        shown.append(source(cell))
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain")
            if text and "show_source(" in source(cell):
                shown.append("".join(text))
    raise LookupError(f"{path.name} has no cell tagged {tag}")


EXERCISES = [
    (exercise, path)
    for exercise in all_exercises()
    for path in NOTEBOOKS
    if exercise.tag in path.read_text(encoding="utf-8")
]


@pytest.mark.parametrize(
    ("exercise", "path"), EXERCISES, ids=[f"{p.stem}:{e.name}" for e, p in EXERCISES]
)
def test_no_exercise_is_answered_by_code_displayed_before_it(exercise, path: Path) -> None:
    wanted = significant_lines(solution_body(exercise.solution_source))
    if not wanted:
        pytest.skip("the solution has no line long enough to compare")
    shown = {line.strip() for line in displayed_code_before(path, exercise.tag).splitlines()}
    copied = [line for line in wanted if line in shown]
    assert len(copied) < max(2, len(wanted) / 2), (
        f"{path.name}: most of {exercise.name}'s solution was displayed before it: {copied[:5]}"
    )
