"""Show lesson files from disk in notebooks: the code shown is the code that runs and is tested."""

from __future__ import annotations

import ast
import textwrap
from html import escape
from pathlib import Path

from IPython.display import Code

# The project root: notebooks run with their own folder as the working directory, so paths are
# resolved from here rather than from the current directory.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def project_path(relative: str) -> Path:
    path = (PROJECT_ROOT / relative).resolve()
    if PROJECT_ROOT not in path.parents:
        raise ValueError(f"{relative!r} is outside the project")
    return path


# Highlighting language and the comment syntax for the "which file is this" header line.
_LANGUAGES = {
    ".py": ("python", "# {}"),
    ".html": ("html", "<!-- {} -->"),
    ".js": ("javascript", "// {}"),
    ".conf": ("nginx", "# {}"),
    ".toml": ("toml", "# {}"),
}


def _defines(node: ast.stmt, name: str) -> bool:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name == name
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    return False


def _definition_lines(source: str, dotted: str, relative: str) -> tuple[int, int]:
    """First and last line of a definition, decorators included: `name`, `Class.method` or
    `outer.inner` (a function defined inside another, such as a route inside create_app)."""
    scope: list[ast.stmt] = ast.parse(source).body
    node: ast.AST | None = None
    for part in dotted.split("."):
        node = next((n for n in scope if _defines(n, part)), None)
        if node is None:
            raise LookupError(f"{relative} has no definition named {dotted!r}")
        scope = getattr(node, "body", [])
    assert node is not None and node.end_lineno is not None
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno] + [d.lineno for d in decorators]), node.end_lineno


def show_source(relative: str, *selection: int | str) -> Code:
    """Display a project file, or part of it, with highlighting.

    `selection` is either definition names (`"relay_tokens"`, `"StreamTracker.close"`,
    `"create_app.chat_stream"`), which keep pointing at the right code when the file changes, or
    a line range `start[, end]` (1-based, inclusive) for files that are not Python. The path
    shown is relative to the project root, never this machine's absolute path.
    """
    text = project_path(relative).read_text(encoding="utf-8")
    lines = text.splitlines()
    language, comment = _LANGUAGES.get(Path(relative).suffix, ("text", "{}"))
    if selection and all(isinstance(item, str) for item in selection):
        parts = []
        for name in selection:
            first, last = _definition_lines(text, str(name), relative)
            # Dedented, so a method or a route inside create_app reads like top-level code.
            parts.append(textwrap.dedent("\n".join(lines[first - 1 : last])))
        excerpt = "\n\n\n".join(parts)
        header = comment.format(f"{relative}: {', '.join(map(str, selection))}")
    else:
        if len(selection) > 2 or not all(isinstance(item, int) for item in selection):
            raise TypeError("select definitions by name, or lines with start[, end]")
        first = int(selection[0]) if selection else 1
        last = int(selection[1]) if len(selection) > 1 else len(lines)
        excerpt = "\n".join(lines[first - 1 : last])
        ranged = f" (lines {first}-{last})" if selection else ""
        header = comment.format(relative + ranged)
    return Code(f"{header}\n{excerpt}\n", language=language)


class Table:
    """A table for a notebook: HTML in JupyterLab, aligned columns as plain text (which nbval
    compares, timings masked as everywhere else)."""

    def __init__(self, headers: list[str], rows: list[list[object]], *, caption: str = "") -> None:
        self.headers = [str(h) for h in headers]
        self.rows = [[str(cell) for cell in row] for row in rows]
        self.caption = caption
        if any(len(row) != len(self.headers) for row in self.rows):
            raise ValueError("every row needs one cell per header")

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{escape(h)}</th>" for h in self.headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
            for row in self.rows
        )
        caption = f"<caption>{escape(self.caption)}</caption>" if self.caption else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        widths = [
            max(len(r[i]) for r in [self.headers, *self.rows]) for i in range(len(self.headers))
        ]
        lines = [self.caption] if self.caption else []
        for index, row in enumerate([self.headers, *self.rows]):
            lines.append(
                "  ".join(
                    cell.ljust(width) for cell, width in zip(row, widths, strict=True)
                ).rstrip()
            )
            if index == 0:
                lines.append("  ".join("-" * width for width in widths))
        return "\n".join(lines)


def show_table(headers: list[str], rows: list[list[object]], *, caption: str = "") -> Table:
    """A table to end a notebook cell with (it displays itself)."""
    return Table(headers, rows, caption=caption)
