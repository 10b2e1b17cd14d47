"""The clock and the client of one stream, watched by one task, so the relay's loop needs no timer.

A relay's loop awaits the provider and writes to the client, nothing else. Everything that can
go wrong with time happens elsewhere: the watchdog, one task per stream, sleeps until the next
moment something is due and acts then:

- a deadline passed (the provider's answer, its first piece, a silence, the whole reply): it
  cancels the loop, which ends the stream with a terminal error event;
- one write has been stuck for `send_timeout_s` (the client stopped reading): it cancels the
  loop, which gives up on that client;
- the client sent `http.disconnect`: it cancels the loop at once (a generation, which has no
  client, is told `relay.stop` instead, when it is stopped or nobody reads it any more);
- nothing was written for `keepalive_interval_s`: it writes a keep-alive comment itself.

Why not a timeout around each `await anext(stream)`: a keep-alive timer that fires must not
cancel the read (that would throw CancelledError into the SDK's iterator and end it), so
keep-alives would need a task per token to await the read in. Here the loop only records
timestamps (a few attribute writes per piece), and the one task wakes about once per
keep-alive interval whatever the token rate. When the watchdog does cancel the loop, the stream
is ending anyway, so the interrupted read does no harm: the core closes the stream right after.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Literal

import anyio

from lessons.relay_core.settings import RelaySettings

Receive = Callable[[], Awaitable[dict[str, object]]]

# Why a stream ended early.
EndReason = Literal[
    "client_disconnected",
    "reader_stalled",
    "open_deadline",
    "first_token_deadline",
    "idle_deadline",
    "total_deadline",
    "shutdown",
    "stopped",
    "abandoned",
]
DEADLINES = frozenset({"open_deadline", "first_token_deadline", "idle_deadline", "total_deadline"})

# What the loop is waiting for, which decides the deadline that applies.
OPENING, FIRST_TOKEN, STREAMING, FINISHING = range(4)


class Watchdog:
    """Deadlines, keep-alives and the client's disconnect for one stream."""

    __slots__ = (
        "_nap",
        "_scope",
        "last_write_at",
        "opened_at",
        "phase",
        "settings",
        "sleeping_until",
        "started",
        "tripped",
        "waiting_since",
        "writing_since",
    )

    def __init__(self, settings: RelaySettings, started: float) -> None:
        self.settings = settings
        self.started = started  # time.monotonic() when the request arrived
        self.phase = OPENING
        self.opened_at = started
        # Set by the loop: when it began waiting for the provider, and when a write began.
        self.waiting_since = started
        self.writing_since: float | None = None
        # None until the response has started: no keep-alive can be sent before the headers.
        self.last_write_at: float | None = None
        self.tripped: EndReason | None = None
        self._scope: anyio.CancelScope | None = None
        # The watchdog sleeps until the next due time it knows of (and never for more than half
        # a send timeout once the stream is open). When the stream opens, keep-alives may be due
        # sooner than the open deadline it slept towards: `opened()` nudges it to recompute.
        self.sleeping_until = float("inf")
        self._nap: anyio.CancelScope | None = None

    def guard(self, scope: anyio.CancelScope | None) -> None:
        """The scope to cancel when the stream must end (None once the loop has finished)."""
        self._scope = scope
        if scope is not None and self.tripped is not None:
            scope.cancel()

    def trip(self, reason: EndReason) -> None:
        """End the stream now. The first reason wins; later ones change nothing."""
        if self.tripped is not None:
            return
        self.tripped = reason
        if self._scope is not None:
            self._scope.cancel()

    def opened(self, now: float) -> None:
        self.phase = FIRST_TOKEN
        self.opened_at = self.waiting_since = now
        self.nudge()

    def nudge(self) -> None:
        """Wake the watchdog to recompute its next due time (something became due sooner)."""
        if self._nap is not None:
            self._nap.cancel()

    def next_due(self) -> tuple[float, EndReason | Literal["keepalive"]]:
        """The next moment something must happen, and what."""
        s = self.settings
        due: float = self.started + s.total_timeout_s
        what: EndReason | Literal["keepalive"] = "total_deadline"
        if self.writing_since is not None:
            # Blocked on the client: the provider's deadlines wait, the client's applies.
            stalled = self.writing_since + s.send_timeout_s
            return (stalled, "reader_stalled") if stalled < due else (due, what)
        if self.phase == OPENING:
            deadline, reason = self.started + s.open_timeout_s, "open_deadline"
        elif self.phase == FIRST_TOKEN:
            deadline, reason = self.opened_at + s.first_token_timeout_s, "first_token_deadline"
        elif self.phase == STREAMING:
            deadline, reason = self.waiting_since + s.idle_timeout_s, "idle_deadline"
        else:
            deadline, reason = due, what
        if deadline < due:
            due, what = deadline, reason  # type: ignore[assignment]
        if self.last_write_at is not None and self.phase != FINISHING:
            ping = self.last_write_at + s.keepalive_interval_s
            if ping < due:
                due, what = ping, "keepalive"
        return due, what

    async def run(self, receive: Receive | None, keepalive: Callable[[], Awaitable[None]]) -> None:
        """The watchdog's task: returns once it has tripped (or is cancelled with the stream)."""
        while self.tripped is None:
            due, what = self.next_due()
            now = time.monotonic()
            if self.phase != OPENING:
                # A write may begin, and stall, while the watchdog sleeps towards a later time:
                # it looks again at least twice per send timeout, so a stalled write is seen
                # within 1.5 send timeouts, without the loop paying anything per write.
                due = min(due, now + self.settings.send_timeout_s / 2)
            wait = due - now
            if wait <= 0:
                if what != "keepalive":
                    self.trip(what)
                    return
                with anyio.move_on_after(self.settings.send_timeout_s) as ping:
                    await keepalive()
                if ping.cancelled_caught:
                    self.trip("reader_stalled")
                continue
            with anyio.CancelScope(deadline=due) as nap:
                self._nap, self.sleeping_until = nap, due
                if receive is None:
                    await anyio.sleep_forever()
                else:
                    # The request body has been read, so the server's next message is the
                    # disconnect: it arrives the moment the client closes the connection. A
                    # stream with no client (a generation) gets `relay.stop` from its store.
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        self.trip("client_disconnected")
                    elif message["type"] == "relay.stop":
                        self.trip(message["reason"])  # type: ignore[arg-type]
            self._nap, self.sleeping_until = None, float("inf")
