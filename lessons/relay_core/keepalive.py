"""Keep-alive pings for event streams that go quiet, e.g. while a model works on token one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import TypeVar

T = TypeVar("T")
P = TypeVar("P")


async def with_keepalive(
    events: AsyncIterable[T], interval_s: float, ping: P
) -> AsyncIterator[T | P]:
    """Yield `events` as they come, and `ping` whenever none has come for `interval_s` seconds.

    Proxies and load balancers close connections that stay silent (often after 30-60 s); a comment
    line such as `: ping` keeps bytes flowing and is ignored by SSE clients. The next event is
    awaited in its own task and never cancelled by the timer (a timeout around `anext()` would
    throw CancelledError into the source and end it). Closing this generator (the client left)
    cancels that task, so the source's `finally` runs and closes the upstream stream.
    """
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    source = aiter(events)
    pending: asyncio.Future[T] = asyncio.ensure_future(anext(source))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=interval_s)
            if not done:
                yield ping
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            yield item
            pending = asyncio.ensure_future(anext(source))
    finally:
        if not pending.done():
            pending.cancel()
            # wait() does not re-raise the task's CancelledError, yet still lets a cancellation
            # of this task through.
            await asyncio.wait({pending})
        if not pending.cancelled():
            # Mark its outcome as seen: no "exception was never retrieved" in the log.
            with contextlib.suppress(BaseException):
                pending.result()
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
