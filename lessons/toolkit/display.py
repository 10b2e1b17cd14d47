"""Show lesson files from disk in notebooks: the code shown is the code that runs and is tested."""

from __future__ import annotations

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


def show_source(relative: str, start: int | None = None, end: int | None = None) -> Code:
    """Display a project file (optionally lines start..end, 1-based, inclusive) with highlighting.

    The path shown is relative to the project root, never this machine's absolute path.
    """
    lines = project_path(relative).read_text(encoding="utf-8").splitlines()
    first = 1 if start is None else start
    last = len(lines) if end is None else end
    excerpt = "\n".join(lines[first - 1 : last])
    language, comment = _LANGUAGES.get(Path(relative).suffix, ("text", "{}"))
    header = comment.format(relative + (f" (lines {first}-{last})" if start or end else ""))
    return Code(f"{header}\n{excerpt}\n", language=language)
