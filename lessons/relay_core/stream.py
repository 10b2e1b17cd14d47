"""The stream lifecycle: the one response every streaming route returns.

A route hands `EventStream` three things: the call that opens the provider's stream (not yet
awaited), the adapter that turns that stream into items, and the shape its clients read. The
response does the rest, in this order, however the stream ends:

1. It awaits the opening call while watching the client. A provider failure here is still an
   HTTP error with a JSON body (the status line has not been sent); a client that leaves while
   the provider has not even answered cancels the call, which closes the connection to it.
2. It sends the headers and the shape's start event, then relays each item as it arrives, with
   keep-alive comments during silences and the deadlines of `RelaySettings` (see `watchdog.py`).
3. It ends with exactly one terminal event: `done` only when the provider's own end marker
   arrived (an adapter's `Finish`), an error event otherwise, including for a stream that
   simply stopped. A client that left, or stopped reading, gets nothing more.
4. Finally, shielded from cancellation and bounded in time, it closes the provider's stream and
   reports the stream's outcome and usage (`on_end`), so that billing and budgets see every
   stream, whichever way it ended.

Why not Starlette's `StreamingResponse` or FastAPI's native `EventSourceResponse`: with either,
the provider's stream is opened by the route before the response exists, so a client that
leaves while the route awaits the provider is noticed only when the provider answers (notebook
01 measures it). The native response also keeps its 15 s ping interval in a private constant,
has no send timeout for a client that stopped reading, and yields to the event loop after every
event (notebook 09 measures what that costs). This class keeps one task per stream, the
watchdog.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, Literal, Protocol

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from lessons.relay_core.errors import (
    ErrorCode,
    IncompleteStream,
    RelayError,
    classify_before_stream,
    classify_during_stream,
    error_response,
)
from lessons.relay_core.events import Batch, Finish, StreamItem, Token, Usage
from lessons.relay_core.logs import log_event
from lessons.relay_core.settings import RelaySettings
from lessons.relay_core.shapes import EventShape, StreamSummary
from lessons.relay_core.watchdog import (
    DEADLINES,
    FINISHING,
    STREAMING,
    EndReason,
    Watchdog,
)
from lessons.relay_core.wire import SSE_MEDIA_TYPE, STREAM_HEADERS, comment

Outcome = Literal[
    "in_progress",
    "completed",
    "error",  # failed after the stream started: a terminal error event was sent
    "refused",  # failed before the stream started: an HTTP error was sent
    "client_disconnected",
    "reader_stalled",
    "shutdown",
    "stopped",
    "abandoned",  # a generation nobody was reading any more
]

KEEPALIVE = comment("ping")
# The longest the relay loop runs without letting the event loop run anything else.
CHECKPOINT_S = 0.005
_BODY = "http.response.body"


class Registry(Protocol):
    """Where open streams are kept, so that shutdown can end each one (see `server.py`)."""

    def add(self, stream: EventStream) -> None: ...
    def discard(self, stream: EventStream) -> None: ...


Items = AsyncIterable[StreamItem | Batch]


class EventStream(Response):
    """One relayed stream: open, relay, end with one terminal event, close, account."""

    media_type = SSE_MEDIA_TYPE

    def __init__(
        self,
        opening: Awaitable[Any],
        events: Callable[[Any], Items],
        shape: EventShape,
        *,
        request_id: str,
        settings: RelaySettings | None = None,
        provider: str = "",
        model: str = "",
        started: float | None = None,
        registry: Registry | None = None,
        on_end: Callable[[EventStream], Awaitable[None]] | None = None,
        headers: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> None:
        """`opening` is the un-awaited call that opens the provider's stream (for example
        `client.chat.completions.create(..., stream=True)`); `events(upstream)` its adapter.
        (`status_code` is the stream's, 200; a failure before the stream picks its own. FastAPI
        reads its default to document the route.)"""
        self.status_code = status_code
        self.background = None
        self.init_headers({**STREAM_HEADERS, **shape.headers, **(headers or {})})
        self.raw_headers.append((b"x-request-id", request_id.encode()))
        self.settings = settings or RelaySettings()
        self.shape = shape
        self.summary = StreamSummary(
            request_id, provider, model, started if started is not None else time.monotonic()
        )
        self.outcome: Outcome = "in_progress"
        self.end_reason: EndReason | None = None
        self.watchdog = Watchdog(self.settings, self.summary.started)
        self._opening: Awaitable[Any] | None = opening
        self._events = events
        self._registry = registry
        self._on_end = on_end
        self._upstream: Any = None
        self._items: AsyncIterator[StreamItem | Batch] | None = None
        self._closed = False
        self._response_started = False
        self._completed = False
        # A keep-alive (written by the watchdog's task) and the loop's writes must not overlap.
        # No lock is taken per token: the watchdog writes a ping only while the loop is not
        # writing, and a loop that wants to write meanwhile waits for the ping to be out.
        self._pinging = False
        self._pinged = asyncio.Event()
        self._scope: Scope = {}
        self._receive: Receive | None = None
        self._send: Send | None = None

    @property
    def request_id(self) -> str:
        return self.summary.request_id

    def stop(self, reason: EndReason = "stopped") -> None:
        """End this stream from outside (shutdown, a stop route): it ends with a terminal event."""
        self.watchdog.trip(reason)

    # --- the lifecycle --------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._scope, self._receive, self._send = scope, receive, send
        if self._registry is not None:
            self._registry.add(self)
        dog = self.watchdog
        try:
            async with anyio.create_task_group() as tasks:
                with anyio.CancelScope() as loop:
                    dog.guard(loop)
                    tasks.start_soon(dog.run, receive, self._keepalive)
                    await self._run()
                dog.guard(None)
                tasks.cancel_scope.cancel()
            if loop.cancelled_caught and dog.tripped is not None:
                await self._end_early(dog.tripped)
        finally:
            with anyio.CancelScope(shield=True):
                await self._release()

    async def _run(self) -> None:
        summary = self.summary
        assert self._opening is not None
        opening, self._opening = self._opening, None
        try:
            self._upstream = await opening
        except Exception as exc:
            await self._refuse(classify_before_stream(exc, summary.request_id))
            return
        self.watchdog.opened(time.monotonic())
        try:
            self._items = aiter(self._events(self._upstream))
            await self._start()
            await self._relay()
        except Exception as exc:
            # Exception, not BaseException: a cancellation (the client left, a deadline) is
            # handled by _end_early, where the reason is known.
            error = classify_during_stream(exc, summary.request_id)
            await self._close_upstream()
            await self._fail(error)

    async def _relay(self) -> None:
        summary, shape, dog, write = self.summary, self.shape, self.watchdog, self._write
        assert self._items is not None
        yielded_at = time.monotonic()
        async for item in self._items:
            if dog.phase != STREAMING:
                dog.phase = STREAMING
                dog.nudge()  # the idle deadline may come before the watchdog's next wake-up
            if type(item) is Token:
                if summary.first_token_at is None:
                    summary.first_token_at = time.monotonic()
                summary.tokens += 1
                await write(shape.token(item.text))
            else:
                data = (
                    self._frame_batch(item.items) if type(item) is Batch else self._frame_one(item)
                )
                if data:
                    await write(data)
                else:
                    dog.waiting_since = time.monotonic()
            if dog.waiting_since - yielded_at > CHECKPOINT_S:
                # Buffered provider data is read, and a client's socket written, without ever
                # suspending: let the loop run (a lost connection, the watchdog, other streams)
                # at least this often, not once per token as FastAPI's native SSE does.
                await asyncio.sleep(0)
                yielded_at = time.monotonic()
        if summary.finish_reason is None:
            raise IncompleteStream()
        await self._succeed()

    def _frame_one(self, item: StreamItem) -> bytes | None:
        summary = self.summary
        if type(item) is Token:
            if summary.first_token_at is None:
                summary.first_token_at = time.monotonic()
            summary.tokens += 1
            return self.shape.token(item.text)
        if type(item) is Usage:
            summary.usage = item
        elif type(item) is Finish:
            summary.finish_reason = item.reason
            return None
        return self.shape.other(item, summary)

    def _frame_batch(self, items: tuple[StreamItem, ...]) -> bytes:
        # Tokens are nearly every item of a batch: framed here without a call per item.
        token, framed, tokens = self.shape.token, [], 0
        for item in items:
            if type(item) is Token:
                framed.append(token(item.text))
                tokens += 1
            else:
                data = self._frame_one(item)
                if data:
                    framed.append(data)
        if tokens:
            summary = self.summary
            if summary.first_token_at is None:
                summary.first_token_at = time.monotonic()
            summary.tokens += tokens
        return b"".join(framed)

    # --- endings --------------------------------------------------------------------------------

    async def _succeed(self) -> None:
        self.watchdog.phase = FINISHING
        self.outcome = "completed"
        await self._terminal(self.shape.done(self.summary))

    async def _fail(self, error: RelayError) -> None:
        self.outcome = "error"
        if self._response_started:
            await self._terminal(self.shape.error(error, self.summary))
        else:
            await self._refuse(error)

    async def _end_early(self, reason: EndReason) -> None:
        """The watchdog (or `stop`) cancelled the loop: end as the reason requires."""
        self.end_reason = reason
        await self._close_upstream()
        if reason in ("client_disconnected", "reader_stalled"):
            # Nobody is reading: there is no one to send a terminal event to.
            self.outcome = reason
            return
        if reason in DEADLINES:
            log_event(
                logging.WARNING,
                "stream_deadline",
                request_id=self.request_id,
                deadline=reason,
                limit_s=self._limit(reason),
            )
            # A reply whose end marker arrived is complete: only the provider's closing of the
            # connection was late, and the client gets its `done`.
            complete = self.summary.finish_reason is not None
            ending = (
                self._succeed()
                if complete
                else self._fail(RelayError(ErrorCode.PROVIDER_TIMEOUT, self.request_id))
            )
        elif reason == "shutdown":
            ending = self._fail(RelayError(ErrorCode.SHUTTING_DOWN, self.request_id, "1"))
        else:
            ending = self._fail(RelayError(ErrorCode.STOPPED, self.request_id))
        # Bounded and shielded: a slow client must not hold the stream open past its end.
        with anyio.move_on_after(self.settings.send_timeout_s, shield=True):
            await ending
        if reason in ("shutdown", "stopped", "abandoned"):
            self.outcome = reason

    def _limit(self, reason: EndReason) -> float:
        s = self.settings
        return {
            "open_deadline": s.open_timeout_s,
            "first_token_deadline": s.first_token_timeout_s,
            "idle_deadline": s.idle_timeout_s,
            "total_deadline": s.total_timeout_s,
        }[reason]

    async def _release(self) -> None:
        """However the stream ended: upstream closed, outcome settled, usage reported."""
        await self._close_upstream()
        if inspect.iscoroutine(self._opening):
            self._opening.close()  # never awaited: the provider was never called
        if self.outcome == "in_progress":
            # Cancelled from outside (the server stopping): the client is gone.
            self.outcome = "client_disconnected"
        if self._registry is not None:
            self._registry.discard(self)
        summary = self.summary
        log_event(
            logging.INFO,
            "stream_end",
            request_id=summary.request_id,
            outcome=self.outcome,
            reason=self.end_reason,
            provider=summary.provider,
            model=summary.model,
            pieces=summary.tokens,
            finish_reason=summary.finish_reason,
            latency_ms=summary.latency_ms(),
        )
        if self._on_end is not None:
            with anyio.move_on_after(self.settings.close_timeout_s):
                try:
                    await self._on_end(self)
                except Exception:
                    logging.getLogger("lessons.relay").exception(
                        "on_end failed, request_id=%s", summary.request_id
                    )

    async def _close_upstream(self) -> None:
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.settings.close_timeout_s):
            try:
                if self._items is not None and hasattr(self._items, "aclose"):
                    await self._items.aclose()
                if self._upstream is not None:
                    await close_upstream(self._upstream)
            except Exception as exc:
                log_event(
                    logging.WARNING,
                    "upstream_close_failed",
                    request_id=self.request_id,
                    exception=type(exc).__name__,
                )

    # --- the client side: overridden by sinks that are not an HTTP response --------------------

    async def _start(self) -> None:
        assert self._send is not None
        await self._send(
            {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
        )
        self._response_started = True
        now = time.monotonic()
        self.watchdog.last_write_at = self.watchdog.waiting_since = now
        first = self.shape.start(self.summary)
        if first:
            await self._write(first)

    async def _write(self, data: bytes, *, more: bool = True) -> None:
        dog = self.watchdog
        if self._pinging:
            await self._pinged.wait()
        dog.writing_since = dog.last_write_at = time.monotonic()
        await self._send({"type": _BODY, "body": data, "more_body": more})  # type: ignore[misc]
        dog.writing_since = None
        dog.waiting_since = time.monotonic()

    async def _keepalive(self) -> None:
        if self.watchdog.writing_since is not None:
            return  # the loop is writing: that is traffic enough
        self._pinging = True
        self._pinged.clear()
        try:
            self.watchdog.last_write_at = time.monotonic()
            await self._send({"type": _BODY, "body": KEEPALIVE, "more_body": True})  # type: ignore[misc]
        finally:
            self._pinging = False
            self._pinged.set()

    async def _terminal(self, data: bytes) -> None:
        tail = self.shape.after_terminal()
        # The terminal event and the end of the body in one write.
        await self._write(data + tail if tail else data, more=False)
        self._completed = True

    async def _refuse(self, error: RelayError) -> None:
        self.outcome = "refused"
        assert self._receive is not None and self._send is not None
        await error_response(error)(self._scope, self._receive, self._send)
        self._completed = True


async def close_upstream(upstream: Any) -> None:
    """Close a provider stream: the SDKs' streams have `close()`, generators `aclose()`."""
    close = getattr(upstream, "aclose", None) or getattr(upstream, "close", None)
    if close is None:
        return
    result = close()
    if inspect.isawaitable(result):
        await result
