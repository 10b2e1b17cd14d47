"""Checkers for notebook 05's exercises."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import openai

from lessons.relay_core.errors import MESSAGES, ErrorCode
from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.exercises import NotYet
from lessons.toolkit.providers import sdk_env_pointed_at

SECRET = "org-s3cr3t"


# --- error_contract ----------------------------------------------------------------------------


async def _pieces(texts: list[str], failure: BaseException | None) -> AsyncIterator[str]:
    for text in texts:
        await asyncio.sleep(0)
        yield text
    if failure is not None:
        raise failure


async def _async_gen(made: Any, name: str) -> Any:
    if inspect.iscoroutine(made):
        await made  # an untouched stub raises NotImplementedError here: "not attempted"
        raise NotYet(f"{name} must be an async generator (`async def` with `yield`)")
    if not inspect.isasyncgen(made):
        raise NotYet(f"{name} must be an async generator (`async def` with `yield`)")
    return made


async def _collect(candidate: Callable[..., Any], pieces: AsyncIterator[str]) -> list[dict]:
    events = await _async_gen(candidate(pieces, "req_exercise"), "contract_events")
    out = []
    async with asyncio.timeout(3):
        async for text in events:
            if not isinstance(text, str) or not text.startswith("data: "):
                raise NotYet(f"each event is `data: {{json}}\\n\\n` text, got {text!r}")
            if not text.endswith("\n\n"):
                raise NotYet(f"an event must end with a blank line: {text!r}")
            out.append(json.loads(text[len("data: ") :]))
    return out


def _overloaded() -> openai.APIError:
    request = httpx2.Request("POST", "https://api.openai.com/v1/chat/completions")
    body = {"message": f"Overloaded ({SECRET})", "type": "overloaded_error"}
    return openai.APIError(f"Overloaded ({SECRET})", request, body=body)


async def check_error_contract(candidate: Callable[..., Any]) -> None:
    ok = await _collect(candidate, _pieces(["Hel", "lo"], None))
    if ok != [
        {"token": "Hel", "done": False},
        {"token": "lo", "done": False},
        {"token": "", "done": True},
    ]:
        raise NotYet(f"a reply that completes should give two tokens then done, got {ok}")
    for failure, code in (
        (_overloaded(), ErrorCode.PROVIDER_OVERLOADED),
        (RuntimeError(f"database at 10.0.0.7 said no ({SECRET})"), ErrorCode.INTERNAL),
    ):
        events = await _collect(candidate, _pieces(["Hel", "lo"], failure))
        text = json.dumps(events)
        if SECRET in text or "10.0.0.7" in text:
            raise NotYet("the exception's text reached the client: send only the fixed message")
        terminals = [e for e in events if e.get("done") is True]
        if len(terminals) != 1 or events[-1] is not terminals[0]:
            raise NotYet(f"need exactly one terminal event, and last; got {events}")
        last = events[-1]
        if "error" not in last:
            raise NotYet(f"a failed reply must end with an error event, not {last}")
        if last.get("code") != code or last.get("error") != MESSAGES[code]:
            raise NotYet(
                f"for {type(failure).__name__} expected code {code.value!r} with its fixed message "
                f"(use classify_during_stream), got {last}"
            )
        if last.get("request_id") != "req_exercise":
            raise NotYet("the error event must carry the request id, so support can find the log")


# --- stall_timeout -----------------------------------------------------------------------------


class _Source:
    """An async generator with a script of delays; records whether it was closed."""

    def __init__(self, delays: list[float]) -> None:
        self.delays = delays
        self.closed = False

    async def items(self) -> AsyncIterator[str]:
        try:
            for n, delay in enumerate(self.delays):
                await asyncio.sleep(delay)
                yield f"t{n}"
        finally:
            self.closed = True


async def check_stall_timeout(candidate: Callable[..., Any]) -> None:
    # Steady: every gap under the limit, the whole stream well over it.
    steady = _Source([0.02] + [0.05] * 8)
    got = []
    try:
        async with asyncio.timeout(3):
            made = await _async_gen(candidate(steady.items(), 0.2), "with_idle_timeout")
            got = [item async for item in made]
    except TimeoutError:
        raise NotYet(
            "a steady stream (a token every 50 ms, 0.4 s in all) timed out with idle_s=0.2: "
            "the limit is on each gap, not on the whole stream"
        ) from None
    if got != [f"t{n}" for n in range(9)]:
        raise NotYet(f"every item should pass through in order, got {got}")

    # Stalled: two items, then silence.
    stalled = _Source([0.0, 0.02, 30.0])
    got = []
    started = time.monotonic()
    raised = False
    try:
        async with asyncio.timeout(3):
            async for item in await _async_gen(
                candidate(stalled.items(), 0.2), "with_idle_timeout"
            ):
                got.append(item)
    except TimeoutError:
        raised = True
    elapsed = time.monotonic() - started
    if elapsed >= 2.9:
        raise NotYet("a source that goes silent was waited on for ever: no idle timeout")
    if not raised:
        raise NotYet(
            "the stall ended the stream silently: raise TimeoutError, so the relay can send its "
            "terminal error event"
        )
    if got != ["t0", "t1"]:
        raise NotYet(f"the items before the stall should pass through, got {got}")
    if elapsed > 1.5:
        raise NotYet(f"the stall was noticed after {elapsed:.1f} s with idle_s=0.2")
    await asyncio.sleep(0.05)
    if not stalled.closed:
        raise NotYet("the source was left open after the timeout: close it (its upstream too)")


# --- cancels_upstream --------------------------------------------------------------------------


def check_cancels_upstream(candidate: Callable[..., Any]) -> None:
    from lessons.mock_providers import MockProviders
    from lessons.resilient_relay import detached_producer_pitfall
    from lessons.resilient_relay.relay import create_app

    # A slow reply (about 2 s), so that leaving after three tokens is leaving early.
    mock = MockProviders(ttft_ms=0, token_interval_ms=25)
    with BackgroundServer(mock.app) as mock_server:
        with sdk_env_pointed_at(mock_server.url):
            good = BackgroundServer(create_app()).start()
            leaky = BackgroundServer(detached_producer_pitfall.app).start()
        try:
            if candidate(good.url, mock) is not True:
                raise NotYet("the resilient relay does cancel its upstream, but you returned False")
            mock.reset()
            mock.set_timing(token_interval_ms=25)
            if candidate(leaky.url, mock) is not False:
                raise NotYet(
                    "detached_producer_pitfall keeps generating after the client leaves, but you "
                    "returned True: wait for the mock to finish the request and read its outcome"
                )
        finally:
            good.stop()
            leaky.stop()
