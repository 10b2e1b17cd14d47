"""Exercises written once: solutions in solutions/, learner stubs generated into notebook cells.

A solution module marks each exercise as a region::

    # %% exercise: first_token  check: lessons.toolkit.exercise_checks.nb00:check_first_token
    # (optionally followed by `candidate: NAME`, the object handed to the checker)
    def first_token_ms(...):
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION
    # %% end

The learner's notebook holds the region with each BEGIN/END block replaced by a stub that raises
NotImplementedError, in a code cell tagged `exercise:<module>:<name>`. `python -m
lessons.toolkit.exercises sync` regenerates those cells; `--check` fails when one is stale.
A check cell calls `check(checker, candidate)`, which reports "not attempted", "not yet: why" or
"correct" and never raises, so an untouched notebook still runs top to bottom.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import re
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STUB_LINE = "raise NotImplementedError  # Your code here: replace this line."

_REGION_START = re.compile(
    r"^# %% exercise: (?P<name>\w+)\s+check: (?P<check>[\w.]+:\w+)"
    r"(?:\s+candidate: (?P<candidate>\w+))?\s*$"
)
_REGION_END = "# %% end"
_BEGIN = "### BEGIN SOLUTION"
_END = "### END SOLUTION"

T = TypeVar("T")


class NotYet(AssertionError):
    """Raised by a checker: the candidate runs but is not right yet; the message says why."""


Status = Literal["not attempted", "not yet", "correct"]


@dataclass(frozen=True)
class CheckResult:
    status: Status
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "correct"

    def __str__(self) -> str:
        mark = {"correct": "[correct]", "not yet": "[not yet]", "not attempted": "[not attempted]"}
        return f"{mark[self.status]} {self.detail}".rstrip()

    def __repr__(self) -> str:
        return str(self)


def run_sync(awaitable: Awaitable[T]) -> T:
    """Run a coroutine to completion from synchronous code, even inside Jupyter's running loop.

    The coroutine gets a fresh event loop in a worker thread: the kernel's loop is busy running
    the cell, and SDK clients must not be shared across loops anyway.
    """
    result: list[T] = []
    error: list[BaseException] = []

    async def main() -> None:
        result.append(await awaitable)

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="run-sync")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _contains_not_implemented(exc: BaseException | None) -> bool:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, NotImplementedError):
            return True
        if isinstance(exc, BaseExceptionGroup):
            return any(_contains_not_implemented(e) for e in exc.exceptions)
        exc = exc.__cause__ or exc.__context__
    return False


def check(checker: Callable[[Any], Any], candidate: Any) -> CheckResult:
    """Run `checker(candidate)` and report; never raises, so the notebook keeps running."""
    try:
        outcome = checker(candidate)
        if inspect.isawaitable(outcome):
            run_sync(outcome)
    except NotYet as exc:
        if _contains_not_implemented(exc):
            return CheckResult(
                "not attempted", "Fill in the exercise cell above, run it, then this."
            )
        return CheckResult("not yet", str(exc))
    except Exception as exc:
        if _contains_not_implemented(exc):
            return CheckResult(
                "not attempted", "Fill in the exercise cell above, run it, then this."
            )
        return CheckResult("not yet", f"your code raised {type(exc).__name__}: {exc}")
    return CheckResult("correct", "Well done.")


# --- generating learner stubs from solutions ----------------------------------------------------


@dataclass(frozen=True)
class Exercise:
    module: str  # e.g. "solutions.nb00_start_here"
    name: str
    checker: str  # "package.module:function"
    solution_source: str
    candidate: str | None = None  # the name handed to the checker; default: last function defined

    @property
    def tag(self) -> str:
        return f"exercise:{self.module}:{self.name}"

    @property
    def stub_source(self) -> str:
        return make_stub(self.solution_source)

    def load_checker(self) -> Callable[[Any], Any]:
        module_name, _, function = self.checker.partition(":")
        return getattr(importlib.import_module(module_name), function)


def make_stub(solution_source: str) -> str:
    """Replace each BEGIN/END SOLUTION block with one line that raises NotImplementedError."""
    out: list[str] = []
    inside = False
    for line in solution_source.splitlines():
        stripped = line.strip()
        if stripped == _BEGIN:
            if inside:
                raise ValueError("nested BEGIN SOLUTION")
            inside = True
            out.append(line[: len(line) - len(line.lstrip())] + STUB_LINE)
        elif stripped == _END:
            if not inside:
                raise ValueError("END SOLUTION without BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError("BEGIN SOLUTION without END")
    return "\n".join(out).strip("\n")


def strip_markers(solution_source: str) -> str:
    """The solution as a learner would write it: the region without the marker lines."""
    return "\n".join(
        line for line in solution_source.splitlines() if line.strip() not in {_BEGIN, _END}
    ).strip("\n")


def exercises_in(module: str) -> list[Exercise]:
    path = PROJECT_ROOT / (module.replace(".", "/") + ".py")
    found: list[Exercise] = []
    current: tuple[str, str, str | None] | None = None
    body: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        start = _REGION_START.match(line)
        if start:
            if current:
                raise ValueError(f"{path.name}:{number}: exercise region not closed")
            current, body = (start["name"], start["check"], start["candidate"]), []
        elif line.strip() == _REGION_END:
            if not current:
                raise ValueError(f"{path.name}:{number}: '# %% end' outside a region")
            name, checker, candidate = current
            found.append(Exercise(module, name, checker, "\n".join(body).strip("\n"), candidate))
            current = None
        elif current:
            body.append(line)
    if current:
        raise ValueError(f"{path.name}: exercise region {current[0]!r} not closed")
    return found


def all_exercises() -> list[Exercise]:
    modules = sorted(f"solutions.{p.stem}" for p in (PROJECT_ROOT / "solutions").glob("nb*.py"))
    return [exercise for module in modules for exercise in exercises_in(module)]


def exec_region(source: str) -> dict[str, Any]:
    """Execute an exercise region as a notebook cell would, returning its namespace."""
    namespace: dict[str, Any] = {"__name__": "__exercise__"}
    exec(compile(source, "<exercise>", "exec"), namespace)
    return namespace


def sync_notebooks(check_only: bool = False, paths: Sequence[Path] | None = None) -> list[str]:
    """Rewrite tagged exercise cells from solutions/; return the notebooks that were stale.

    `paths` limits the rewrite to these notebooks (all of them by default)."""
    import nbformat

    by_tag = {exercise.tag: exercise for exercise in all_exercises()}
    stale: list[str] = []
    notebooks = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
    if paths is not None:
        wanted = {Path(p).resolve() for p in paths}
        notebooks = [p for p in notebooks if p.resolve() in wanted]
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        changed = False
        for cell in notebook.cells:
            tags = [
                t for t in cell.get("metadata", {}).get("tags", []) if t.startswith("exercise:")
            ]
            for tag in tags:
                if tag not in by_tag:
                    raise ValueError(f"{path.name}: cell tagged {tag!r} has no solution region")
                if cell.source != by_tag[tag].stub_source:
                    cell.source = by_tag[tag].stub_source
                    changed = True
        if changed:
            stale.append(path.name)
            if not check_only:
                nbformat.write(notebook, path)
    return stale


def regions_without_cell() -> list[str]:
    """Exercise regions that no notebook cell is tagged with (a solution nobody can attempt)."""
    import nbformat

    tags: set[str] = set()
    for path in (PROJECT_ROOT / "notebooks").glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            tags.update(cell.get("metadata", {}).get("tags", []))
    return sorted(exercise.tag for exercise in all_exercises() if exercise.tag not in tags)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lessons.toolkit.exercises")
    parser.add_argument("command", choices=["sync"])
    parser.add_argument("--check", action="store_true", help="only report stale notebooks")
    args = parser.parse_args(argv)
    stale = sync_notebooks(check_only=args.check)
    verb = "stale" if args.check else "updated"
    for name in stale:
        print(f"{verb}: {name}")
    for tag in regions_without_cell():
        print(f"warning: no notebook cell is tagged {tag}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "CheckResult",
    "Exercise",
    "NotYet",
    "all_exercises",
    "check",
    "exec_region",
    "make_stub",
    "regions_without_cell",
    "run_sync",
    "strip_markers",
    "sync_notebooks",
]
