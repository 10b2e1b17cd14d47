"""Deadlines for a provider stream: time to first token, silence between tokens, keep-alives."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Final, Literal, TypeVar

T = TypeVar("T")


class _KeepAlive:
    def __repr__(self) -> str:
        return "KEEPALIVE"


# Yielded instead of an item when the first token is slow: the caller sends `: ping`.
KEEPALIVE: Final = _KeepAlive()


class StreamTimeout(TimeoutError):
    """The provider went quiet for longer than allowed (a TimeoutError, so the contract maps it)."""

    def __init__(self, phase: Literal["first_token", "idle"], limit_s: float) -> None:
        super().__init__(f"no {phase.replace('_', ' ')} from the provider within {limit_s} s")
        self.phase = phase
        self.limit_s = limit_s


class Draining(Exception):
    """The server is shutting down: end this stream now, with a terminal event."""


async def paced(
    source: AsyncIterable[T],
    *,
    first_token_s: float,
    idle_s: float,
    keepalive_s: float,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[T | _KeepAlive]:
    """Yield `source`'s items; raise StreamTimeout when it goes quiet for too long.

    Until the first item arrives, the limit is `first_token_s` and KEEPALIVE is yielded every
    `keepalive_s` so proxies see traffic; after it, each gap may last at most `idle_s`. Setting
    `stop` raises Draining at the next wait.

    The next item is awaited in its own task and the deadline is an `asyncio.timeout` around
    *waiting* for that task, never around `anext()` itself: a timeout that cancelled `anext()`
    would throw CancelledError into the SDK's iterator and leave it half-read. And no `yield`
    happens inside the timeout block, because a timeout that fired while this generator is
    suspended would cancel whatever the consumer is doing instead.
    """
    loop = asyncio.get_running_loop()
    items = aiter(source)
    stopping = asyncio.ensure_future(stop.wait()) if stop is not None else None
    got_first = False
    pending: asyncio.Future[T] | None = None
    try:
        while True:
            pending = asyncio.ensure_future(anext(items))
            limit = idle_s if got_first else first_token_s
            deadline = loop.time() + limit
            while not pending.done():
                tick = deadline if got_first else min(deadline, loop.time() + keepalive_s)
                waiting = {pending} if stopping is None else {pending, stopping}
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(tick):
                        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if stopping is not None and stopping.done():
                    raise Draining
                if pending.done():
                    break
                if loop.time() >= deadline:
                    raise StreamTimeout("idle" if got_first else "first_token", limit)
                yield KEEPALIVE
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            got_first = True
            yield item
    finally:
        for task in (pending, stopping):
            if task is not None and not task.done():
                task.cancel()
                # wait() lets this task's own cancellation through but not the child's.
                await asyncio.wait({task})
            if task is not None and not task.cancelled():
                with contextlib.suppress(BaseException):
                    task.exception()
