"""Checkers for notebook 04: each learner test must pass on a good app and fail on a broken one."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp

from lessons.relay_core import (
    ChatRequest,
    EventStream,
    Finish,
    OpenAIClient,
    RelayContext,
    RelaySettings,
    StreamItem,
    TokenEvents,
    create_relay_app,
    model_name,
    openai_chat_events,
)
from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.exercises import NotYet, run_sync
from lessons.toolkit.providers import sdk_env_pointed_at

LearnerTest = Callable[[str, Any], Any]

# The keep-alive interval of the app exercise 2 runs against (the notebook says so).
KEEPALIVE_S = 0.2


@contextmanager
def _lab(
    apps: dict[str, Callable[[], ASGIApp]], token_interval_ms: float = 0
) -> Iterator[tuple[Any, dict[str, str]]]:
    """A mock of the checker's own and the apps started against it: (mock, {name: url}).

    `token_interval_ms` is the mock's pace whenever the learner's test does not set one."""
    from lessons.mock_providers import MockProviders

    mock = MockProviders(ttft_ms=0, token_interval_ms=token_interval_ms)
    servers = [BackgroundServer(mock.app).start()]
    try:
        urls: dict[str, str] = {}
        with sdk_env_pointed_at(servers[0].url):
            for name, make in apps.items():
                servers.append(BackgroundServer(make()).start())
                urls[name] = servers[-1].url
        yield mock, urls
    finally:
        # Stopped together: each stop waits for its server's next tick, which adds up.
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(BackgroundServer.stop, reversed(servers)))


def _run(test: LearnerTest, url: str, mock: Any) -> None:
    mock.reset()
    outcome = test(url, mock)
    if inspect.isawaitable(outcome):
        run_sync(outcome)


def _must_pass(test: LearnerTest, url: str, mock: Any, what: str) -> None:
    try:
        _run(test, url, mock)
    except AssertionError as exc:
        why = f": {exc}" if str(exc) else ""
        raise NotYet(f"your test fails on {what}, which is correct{why}") from exc


def _must_fail(test: LearnerTest, url: str, mock: Any, what: str) -> None:
    try:
        _run(test, url, mock)
    except AssertionError:
        return
    raise NotYet(f"your test passes on {what}: it would not catch that bug")


def _relay(settings: RelaySettings | None = None) -> ASGIApp:
    from lessons.testing_streams.chat_app import create_app

    return create_app(settings)


# --- exercise 1: a reply cut short ----------------------------------------------------------


async def _any_end_is_complete(chunks: AsyncIterable[Any]) -> AsyncIterator[StreamItem]:
    """openai_chat_events with one bug: a stream that simply ended counts as complete."""
    async for item in openai_chat_events(chunks):
        if not isinstance(item, Finish):
            yield item
    yield Finish("stop")


def _trusting_relay() -> FastAPI:
    """The app under test, but its adapter takes any end of the provider's stream as the end."""
    router = APIRouter()

    @router.post("/chat/stream", response_class=EventStream)
    async def chat_stream(
        body: ChatRequest, relay: RelayContext, openai: OpenAIClient
    ) -> EventStream:
        system = relay.system_prompt(body)
        return relay.stream(
            openai.chat.completions.create(
                model=model_name("openai"),
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": body.message},
                ],
                stream=True,
                stream_options={"include_usage": True},
                max_completion_tokens=relay.max_tokens(body.max_tokens),
            ),
            _any_end_is_complete,
            TokenEvents(),
            provider="openai",
            prompt=[system, body.message],
        )

    return create_relay_app(
        title="A relay that trusts any end", routers=[router], providers=("openai",)
    )


def check_cut_reply_test(test: LearnerTest) -> None:
    """Passes on the relay, fails on a relay that reports a reply cut short as complete."""
    with _lab({"good": _relay, "trusting": _trusting_relay}) as (mock, urls):
        _must_pass(test, urls["good"], mock, "the relay")
        _must_fail(
            test,
            urls["trusting"],
            mock,
            "a relay that takes any end of the provider's stream for a complete reply",
        )


# --- exercise 2: keep-alives during a silence -----------------------------------------------


def check_keepalive_test(test: LearnerTest) -> None:
    """Passes on the relay (a ping after 0.2 s of silence), fails when it sends no keep-alive."""
    apps = {
        "good": lambda: _relay(RelaySettings(keepalive_interval_s=KEEPALIVE_S)),
        # Keep-alives so rare that a test never sees one: otherwise the very same relay.
        "silent": lambda: _relay(RelaySettings(keepalive_interval_s=600)),
    }
    with _lab(apps) as (mock, urls):
        _must_pass(
            test, urls["good"], mock, f"the relay (it pings after {KEEPALIVE_S:g} s of silence)"
        )
        _must_fail(test, urls["silent"], mock, "the same relay with its keep-alives turned off")


# --- exercise 3: a client that leaves before the provider answers ---------------------------


def _streaming_response_relay() -> ASGIApp:
    from lessons.testing_streams import silent_error_pitfall

    return silent_error_pitfall.create_app()


def _leaky_relay() -> ASGIApp:
    from lessons.testing_streams import leaky_upstream_pitfall

    return leaky_upstream_pitfall.create_app()


def check_open_leave_test(test: LearnerTest) -> None:
    """Passes on the relay; fails on relays that keep the provider's call once the client left."""
    apps = {"good": _relay, "late": _streaming_response_relay, "leaky": _leaky_relay}
    # A realistic pace: once the provider answers, its reply takes a while, as a real one does.
    with _lab(apps, token_interval_ms=10) as (mock, urls):
        _must_pass(test, urls["good"], mock, "the relay (it cancels the call at once)")
        _must_fail(
            test,
            urls["leaky"],
            mock,
            "a relay whose producer task reads the whole reply for nobody",
        )
        _must_fail(
            test,
            urls["late"],
            mock,
            "a StreamingResponse relay, which notices the client left only once the provider "
            "has answered",
        )
