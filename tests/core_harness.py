"""A fake client and a fake provider stream, to drive `EventStream` without a network.

Tests of the core call the response directly (`await stream(scope, client.receive, client.send)`)
with these, so that every ending can be staged exactly: a client that leaves at a chosen moment,
one that stops reading, a provider that stalls, fails or ends without its end marker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from lessons.relay_core import EventStream, RelaySettings, StreamItem
from lessons.relay_core.contract import WireEvent, read_event
from lessons.toolkit.sse_parser import SSEComment, SSEEvent, parse_sse

FAST = RelaySettings(
    open_timeout_s=2.0,
    first_token_timeout_s=1.0,
    idle_timeout_s=0.3,
    total_timeout_s=5.0,
    keepalive_interval_s=0.1,
    send_timeout_s=0.3,
    close_timeout_s=0.5,
)


class FakeClient:
    """The ASGI side of one connection: records what was sent; can leave or stop reading."""

    def __init__(self, *, freeze_after_writes: int | None = None) -> None:
        self.messages: list[dict[str, Any]] = []
        self.left = asyncio.Event()
        self.left_at: float | None = None
        self.freeze_after_writes = freeze_after_writes

    async def receive(self) -> dict[str, Any]:
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        writes = sum(m["type"] == "http.response.body" for m in self.messages)
        if self.freeze_after_writes is not None and writes >= self.freeze_after_writes:
            await asyncio.Event().wait()  # a reader that stopped reading: the write never ends
        self.messages.append(message)

    def leave(self) -> None:
        self.left_at = time.monotonic()
        self.left.set()

    @property
    def status(self) -> int | None:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        return starts[0]["status"] if starts else None

    @property
    def body(self) -> bytes:
        return b"".join(
            m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"
        )

    @property
    def completed(self) -> bool:
        bodies = [m for m in self.messages if m["type"] == "http.response.body"]
        return bool(bodies) and not bodies[-1].get("more_body", False)

    def events(self) -> list[SSEEvent]:
        return [item for item in parse_sse(self.body) if isinstance(item, SSEEvent)]

    def comments(self) -> list[SSEComment]:
        return [i for i in parse_sse(self.body, include_comments=True) if isinstance(i, SSEComment)]

    def wire(self) -> list[WireEvent]:
        return [read_event(e.event, e.data) for e in self.events()]


@dataclass
class FakeUpstream:
    """A provider stream: yields `items`, each after its delay; records how it was closed."""

    items: Sequence[StreamItem]
    delays: Sequence[float] = ()
    fail_after: int | None = None
    error: BaseException | None = None
    hang_close: bool = False
    closed_at: float | None = None
    pulled: int = 0
    cancelled_reads: int = 0
    _closing: list[float] = field(default_factory=list)

    async def events(self) -> AsyncIterator[StreamItem]:
        for index, item in enumerate(self.items):
            if self.fail_after is not None and index == self.fail_after:
                assert self.error is not None
                raise self.error
            delay = self.delays[index] if index < len(self.delays) else 0.0
            try:
                if delay:
                    await asyncio.sleep(delay)
            except asyncio.CancelledError:
                self.cancelled_reads += 1
                raise
            self.pulled += 1
            yield item

    async def close(self) -> None:
        if self.hang_close:
            await asyncio.sleep(3600)
        self.closed_at = time.monotonic()


async def opening(
    upstream: FakeUpstream, *, delay: float = 0.0, error: BaseException | None = None
):
    if delay:
        await asyncio.sleep(delay)
    if error is not None:
        raise error
    return upstream


def adapter(upstream: FakeUpstream) -> AsyncIterator[StreamItem]:
    return upstream.events()


@dataclass
class Ended:
    outcomes: list[str] = field(default_factory=list)

    async def __call__(self, stream: EventStream) -> None:
        self.outcomes.append(stream.outcome)


SCOPE = {"type": "http", "method": "POST", "path": "/test", "headers": []}


async def run(stream: EventStream, client: FakeClient) -> None:
    await stream(SCOPE, client.receive, client.send)
