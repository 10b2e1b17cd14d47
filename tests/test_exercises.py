"""Every exercise: its checker accepts the solution, reports the stub as not attempted, and rejects
every wrong answer; and the learner stubs committed in the notebooks are generated, not stale."""

from __future__ import annotations

import importlib

import pytest

from lessons.toolkit.exercises import (
    Exercise,
    all_exercises,
    check,
    exec_region,
    regions_without_cell,
    strip_markers,
    sync_notebooks,
)

EXERCISES = all_exercises()


def _candidate_name(exercise: Exercise) -> str:
    # The region names its candidate, or it is the last function or class the region defines.
    if exercise.candidate:
        return exercise.candidate
    namespace = exec_region(strip_markers(exercise.solution_source))
    defined = [
        k
        for k, v in namespace.items()
        if callable(v) and getattr(v, "__module__", "") == "__exercise__"
    ]
    if not defined:
        raise AssertionError(f"{exercise.name}: the region defines no function or class")
    return defined[-1]


def _run(exercise: Exercise, source: str):
    namespace = exec_region(source)
    return check(exercise.load_checker(), namespace[_candidate_name(exercise)])


def _wrong_answers(exercise: Exercise) -> list[str]:
    short = exercise.module.rsplit(".", 1)[1]
    module = importlib.import_module(f"tests.wrong_answers.{short}")
    return module.WRONG_ANSWERS.get(exercise.name, [])


def test_there_are_exercises() -> None:
    assert EXERCISES, "no exercise regions found under solutions/"


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: f"{e.module}:{e.name}")
def test_solution_is_correct(exercise: Exercise) -> None:
    result = _run(exercise, strip_markers(exercise.solution_source))
    assert result.status == "correct", str(result)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: f"{e.module}:{e.name}")
def test_stub_is_not_attempted(exercise: Exercise) -> None:
    result = _run(exercise, exercise.stub_source)
    assert result.status == "not attempted", str(result)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: f"{e.module}:{e.name}")
def test_wrong_answers_are_rejected(exercise: Exercise) -> None:
    wrong = _wrong_answers(exercise)
    assert wrong, f"{exercise.name}: add at least one wrong answer in tests/wrong_answers/"
    for source in wrong:
        result = _run(exercise, source)
        assert result.status == "not yet", f"checker accepted a wrong answer: {result}\n{source}"


def test_notebook_stubs_are_not_stale() -> None:
    stale = sync_notebooks(check_only=True)
    assert not stale, f"run `python -m lessons.toolkit.exercises sync`: stale {stale}"


def test_every_exercise_has_a_notebook_cell() -> None:
    assert not regions_without_cell()
