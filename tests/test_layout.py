"""The promises of the layout: lesson apps import nothing from the toolkit or the mock, importing
any module under lessons/ has no side effects and needs no key, pitfalls say what is wrong."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "lessons"
SUPPORT = {"toolkit", "mock_providers"}
FORBIDDEN_MODULE_NAMES = {"sse", "openai", "anthropic", "httpx", "langchain", "fastapi"}


def lesson_app_files() -> list[Path]:
    return sorted(
        path
        for path in LESSONS.rglob("*.py")
        if path.relative_to(LESSONS).parts[0] not in SUPPORT and path.parent != LESSONS
    )


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


@pytest.mark.parametrize("path", lesson_app_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_lesson_folder_is_copyable_with_relay_core_alone(path: Path) -> None:
    """A lesson module imports third-party packages, lessons.relay_core and its own folder only:
    a reader copies the folder and lessons/relay_core/ into a project and it runs."""
    package = path.relative_to(LESSONS).parts[0]
    allowed = ("lessons.relay_core", f"lessons.{package}")
    bad = {
        name
        for name in imported_modules(path)
        if name.startswith("lessons")
        and not (name in allowed or name.startswith(tuple(a + "." for a in allowed)))
    }
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: its folder could not be copied alone"


def test_relay_core_imports_nothing_else_of_the_project() -> None:
    for path in sorted((LESSONS / "relay_core").rglob("*.py")):
        bad = {
            n
            for n in imported_modules(path)
            if n.startswith("lessons") and not n.startswith("lessons.relay_core")
        }
        assert not bad, f"{path.name} imports {bad}"


def test_no_module_shadows_a_library() -> None:
    for path in list(LESSONS.rglob("*.py")) + list((ROOT / "solutions").rglob("*.py")):
        assert path.stem not in FORBIDDEN_MODULE_NAMES, path
        assert path.parent.name not in FORBIDDEN_MODULE_NAMES, path


@pytest.mark.parametrize(
    "path", sorted(LESSONS.rglob("*_pitfall.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_pitfall_modules_say_what_is_wrong(path: Path) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first_line = docstring.strip().splitlines()[0] if docstring.strip() else ""
    # One fixed prefix, so a reader skimming a file (or grep) sees at once that it is a pitfall.
    assert first_line.startswith("Wrong:"), (
        f"{path.name}: the docstring's first line must start with 'Wrong:' and say what is wrong: "
        f"{first_line!r}"
    )
    assert len(first_line) > len("Wrong: ") + 20, f"{path.name}: say what is wrong"


def test_importing_every_lesson_module_needs_no_key_and_starts_nothing() -> None:
    modules = [module_name(p) for p in sorted(LESSONS.rglob("*.py")) if p.name != "__main__.py"]
    script = (
        "import importlib, threading, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "extra = [t.name for t in threading.enumerate() if t is not threading.main_thread()]\n"
        "assert not extra, f'threads started at import: {extra}'\n"
        "print('ok', len(sys.argv))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
