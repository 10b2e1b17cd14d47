"""Deadlines for a provider stream: time to first token, silence between tokens, keep-alives."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Final, Literal, TypeVar

import anyio

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
    is_token: Callable[[T], bool] = lambda item: True,
) -> AsyncIterator[T | _KeepAlive]:
    """Yield `source`'s items; raise StreamTimeout when it goes quiet for too long.

    Until the first token arrives (the first item for which `is_token` is true: providers send
    a role or start chunk at once, well before any text), the limit is `first_token_s` from the
    start and KEEPALIVE is yielded every `keepalive_s` so proxies see traffic; after it, each
    gap may last at most `idle_s`. Setting `stop` raises Draining at the next wait.

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
    first_deadline = loop.time() + first_token_s
    pending: asyncio.Future[T] | None = None
    try:
        while True:
            pending = asyncio.ensure_future(anext(items))
            limit = idle_s if got_first else first_token_s
            deadline = loop.time() + idle_s if got_first else first_deadline
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
            got_first = got_first or is_token(item)
            yield item
    finally:
        tasks = [t for t in (pending, stopping) if t is not None]
        for task in tasks:
            task.cancel()  # a no-op for a finished task
            task.add_done_callback(_retrieve)
        if tasks:
            # Shielded: on a disconnect this runs in a cancelled scope, where a plain await would
            # be cancelled at once. Wait until the cancelled read has unwound, however long the
            # HTTP client takes: closing the upstream under a read still in progress leaves the
            # client's generators half-run (they are later finalised mid-await, with errors).
            with anyio.CancelScope(shield=True):
                await asyncio.wait(tasks)


def _retrieve(task: asyncio.Future[object]) -> None:
    # Mark the outcome as seen: no "exception was never retrieved" in the log.
    if not task.cancelled():
        task.exception()
