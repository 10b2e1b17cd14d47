"""Notebook 04's helpers: how long the same test is with the kit and with plain httpx."""

from __future__ import annotations

import ast

from lessons.toolkit.display import project_path

KIT_TESTS = "tests/test_nb04_testing_streams.py"
PLAIN_TESTS = "tests/test_nb04_plain_httpx.py"


def body_lines(relative: str, name: str) -> int:
    """Lines of code in a function's body: its docstring, comments and blank lines left out."""
    tree = ast.parse(project_path(relative).read_text(encoding="utf-8"))
    function = next(
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
    )
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    lines: set[int] = set()
    for statement in body:
        for node in ast.walk(statement):
            if hasattr(node, "lineno"):
                lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    source = project_path(relative).read_text(encoding="utf-8").splitlines()
    return sum(
        1 for n in lines if source[n - 1].strip() and not source[n - 1].strip().startswith("#")
    )


def twin_rows(names: list[str], kit_files: dict[str, str] | None = None) -> list[list[object]]:
    """[test, lines with the kit, lines with plain httpx] for tests that have a twin of the same
    name in both files (`kit_files` names another kit file for some of them)."""
    kit_files = kit_files or {}
    return [
        [name, body_lines(kit_files.get(name, KIT_TESTS), name), body_lines(PLAIN_TESTS, name)]
        for name in names
    ]
