"""Checkers for notebook 04: each learner test must pass on a good app and fail on a broken one."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.exercises import NotYet, run_sync
from lessons.toolkit.providers import sdk_env_pointed_at

LearnerTest = Callable[[str, Any], Any]


@contextmanager
def _lab(apps: dict[str, ASGIApp]) -> Iterator[tuple[Any, dict[str, str]]]:
    """A mock of the checker's own and the apps started against it: (mock, {name: url})."""
    from lessons.mock_providers import MockProviders

    mock = MockProviders(ttft_ms=0, token_interval_ms=0)
    with ExitStack() as stack:
        mock_server = stack.enter_context(BackgroundServer(mock.app))
        urls: dict[str, str] = {}
        with sdk_env_pointed_at(mock_server.url):
            for name, app in apps.items():
                urls[name] = stack.enter_context(BackgroundServer(app)).url
        yield mock, urls


def _run(test: LearnerTest, url: str, mock: Any) -> None:
    mock.reset()
    outcome = test(url, mock)
    if inspect.isawaitable(outcome):
        run_sync(outcome)


def _must_pass(test: LearnerTest, url: str, mock: Any, what: str) -> None:
    try:
        _run(test, url, mock)
    except AssertionError as exc:
        raise NotYet(f"your test fails on {what}, which is correct: {exc}") from exc


def _must_fail(test: LearnerTest, url: str, mock: Any, what: str) -> None:
    try:
        _run(test, url, mock)
    except AssertionError:
        return
    raise NotYet(f"your test passes on {what}: it would not catch that bug")


def _good() -> ASGIApp:
    from lessons.testing_streams.chat_app import create_app

    return create_app()


def check_buffering_test(test: LearnerTest) -> None:
    """Passes on the relay, fails when an audit middleware buffers the response."""
    from lessons.testing_streams import buffering_pitfall

    buffered = _good()
    buffered.add_middleware(buffering_pitfall.AuditLogMiddleware)  # type: ignore[attr-defined]
    with _lab({"good": _good(), "buffered": buffered}) as (mock, urls):
        _must_pass(test, urls["good"], mock, "the streaming relay")
        _must_fail(test, urls["buffered"], mock, "an app whose middleware buffers every response")


def check_disconnect_test(test: LearnerTest) -> None:
    """Passes on the relay, fails on a relay whose provider stream outlives the client."""
    from lessons.testing_streams.chat_app import create_app
    from lessons.testing_streams.leaky_upstream_pitfall import relay_through_queue

    with _lab({"good": _good(), "leaky": create_app(relay_through_queue)}) as (mock, urls):
        _must_pass(test, urls["good"], mock, "the relay, which closes its upstream")
        _must_fail(test, urls["leaky"], mock, "a relay that keeps reading from the provider")


class _LoadedMachine:
    """Every request starts late, as on a busy CI runner: the app itself is still correct."""

    def __init__(self, app: ASGIApp, delay: float = 0.3) -> None:
        self.app, self.delay = app, delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(self.delay)
        await self.app(scope, receive, send)


def check_robust_timing(test: LearnerTest) -> None:
    """Passes on the relay even on a slow machine, and still fails on a buffering app."""
    from lessons.testing_streams import buffering_pitfall

    buffered = _good()
    buffered.add_middleware(buffering_pitfall.AuditLogMiddleware)  # type: ignore[attr-defined]
    apps = {"good": _good(), "slow": _LoadedMachine(_good()), "buffered": buffered}
    with _lab(apps) as (mock, urls):
        _must_pass(test, urls["good"], mock, "the streaming relay")
        _must_pass(
            test, urls["slow"], mock, "the same relay on a busy machine (every request 300 ms late)"
        )
        _must_fail(test, urls["buffered"], mock, "an app whose middleware buffers every response")
