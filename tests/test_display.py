"""show_source: the code a notebook shows is read from disk, selected by definition name so the
selection follows the code when the file changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from lessons.toolkit.display import show_source


def test_selects_definitions_by_name_including_methods_and_nested_routes() -> None:
    shown = show_source("lessons/relay_core/errors.py", "classify_before_stream").data
    assert shown.startswith("# lessons/relay_core/errors.py: classify_before_stream\n")
    assert "def classify_before_stream(" in shown
    assert "def classify_during_stream(" not in shown
    method = show_source("lessons/relay_core/errors.py", "RelayError.body").data
    assert method.splitlines()[1].startswith("def body(self)")  # dedented
    nested = show_source("lessons/chat_service/app.py", "create_app.page").data
    assert nested.splitlines()[1].startswith('@app.get("/"')  # decorator included, dedented


def test_line_ranges_for_other_files_and_no_machine_paths() -> None:
    shown = show_source("lessons/proxy_browser/static/chat.html", 1, 2)
    assert shown.data.startswith("<!-- lessons/proxy_browser/static/chat.html (lines 1-2) -->")
    project_root = str(Path(__file__).resolve().parents[1])
    assert project_root not in shown.data


def test_unknown_names_and_paths_outside_the_project_fail_loudly() -> None:
    with pytest.raises(LookupError, match="no_such_function"):
        show_source("lessons/relay_core/errors.py", "no_such_function")
    with pytest.raises(ValueError, match="outside the project"):
        show_source("../../etc/passwd")
