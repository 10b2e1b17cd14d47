"""What each stream owns until it ends: its upstream, its usage record, its registry entry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anyio
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from lessons.relay_core import SSE_MEDIA_TYPE, STREAM_HEADERS

logger = logging.getLogger("lessons.relay")

Outcome = Literal["completed", "error", "client_disconnected", "shutdown", "in_progress"]

# A rough, provider-neutral estimate for text the provider never counted for us: about four
# characters per token for English, plus a few framing tokens per message.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def estimate_input_tokens(texts: list[str]) -> int:
    return sum(math.ceil(len(t) / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE for t in texts)


class Closeable(Protocol):
    async def close(self) -> Any: ...


@dataclass(frozen=True)
class UsageRecord:
    """One stream's cost: the provider's own figures, or an estimate when they never arrived."""

    request_id: str
    client_id: str
    model: str
    input_tokens: int
    output_tokens: int
    estimated: bool
    outcome: Outcome
    duration_ms: float


@dataclass
class UsageLedger:
    """The last streams' usage, in memory. In production, write these to your billing store."""

    records: deque[UsageRecord] = field(default_factory=lambda: deque(maxlen=10_000))

    def add(self, record: UsageRecord) -> None:
        self.records.append(record)
        logger.info(
            "usage request_id=%s client=%s in=%d out=%d estimated=%s outcome=%s",
            record.request_id,
            record.client_id,
            record.input_tokens,
            record.output_tokens,
            record.estimated,
            record.outcome,
        )

    def find(self, request_id: str) -> UsageRecord | None:
        return next((r for r in reversed(self.records) if r.request_id == request_id), None)


class StreamTracker:
    """Everything a stream must give back when it ends, however it ends; `close()` is idempotent."""

    def __init__(
        self,
        *,
        request_id: str,
        model: str,
        prompt_texts: list[str],
        upstream: Closeable,
        ledger: UsageLedger,
        registry: StreamRegistry,
        client_id: str = "anonymous",
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.request_id = request_id
        self.model = model
        self.client_id = client_id
        self.upstream = upstream
        self.outcome: Outcome = "in_progress"
        self.finish_reason: str | None = None
        self.pieces = 0
        self.provider_usage: tuple[int, int] | None = None
        self.stop = asyncio.Event()
        self._prompt_texts = prompt_texts
        self._ledger = ledger
        self._registry = registry
        self._on_close = on_close
        self._started = time.perf_counter()
        self._closed = False
        registry.add(self)

    def streamed(self, text: str) -> None:
        # OpenAI and Anthropic send about one token per text delta: a good enough count.
        self.pieces += 1

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.outcome == "in_progress":
            # Nobody marked an ending, so the task was cancelled: the client left.
            self.outcome = "client_disconnected"
        try:
            # Shielded: on a disconnect this runs inside a cancelled scope, where any await would
            # be cancelled at once and the upstream would be left open (still generating).
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await self.upstream.close()
        except Exception:
            logger.warning("closing the upstream failed request_id=%s", self.request_id)
        finally:
            self._account()
            self._registry.discard(self)
            if self._on_close is not None:
                self._on_close()

    def _account(self) -> None:
        if self.provider_usage is not None:
            input_tokens, output_tokens = self.provider_usage
            estimated = False
        else:
            input_tokens = estimate_input_tokens(self._prompt_texts)
            output_tokens = self.pieces
            estimated = True
        self._ledger.add(
            UsageRecord(
                request_id=self.request_id,
                client_id=self.client_id,
                model=self.model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                estimated=estimated,
                outcome=self.outcome,
                duration_ms=(time.perf_counter() - self._started) * 1000,
            )
        )


class StreamRegistry:
    """The streams in flight, so that shutdown can end each one with a terminal event."""

    def __init__(self) -> None:
        self._active: set[StreamTracker] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.draining = False

    def __len__(self) -> int:
        return len(self._active)

    def add(self, tracker: StreamTracker) -> None:
        self._active.add(tracker)
        self._idle.clear()

    def discard(self, tracker: StreamTracker) -> None:
        self._active.discard(tracker)
        if not self._active:
            self._idle.set()

    async def drain(self, timeout_s: float) -> int:
        """Ask every open stream to end now; wait up to `timeout_s` for them. Returns how many."""
        self.draining = True
        streams = list(self._active)
        for tracker in streams:
            tracker.stop.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        return len(streams)


class TrackedStreamingResponse(StreamingResponse):
    """A streaming response that runs `on_close` however the response ends.

    A generator's `finally` is not enough: when the client leaves before the first chunk is
    pulled, the generator never starts, so its `finally` never runs and the upstream opened by
    the route would stay open.
    """

    def __init__(
        self,
        events: AsyncIterator[str],
        *,
        request_id: str,
        on_close: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(
            events,
            media_type=SSE_MEDIA_TYPE,
            headers={**STREAM_HEADERS, "X-Request-ID": request_id},
        )
        self._after = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._after()
