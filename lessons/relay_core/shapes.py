"""Event shapes: how one route frames the core's items for its clients.

The core decides *what* happens (a token, the end, a failure); a shape decides how it looks on
the wire. Every route has exactly one shape, and every shape ends a stream with exactly one
terminal event. The shapes, and the routes that use them, are listed in `docs/wire-contract.md`:

- `TokenEvents`: unnamed `data:` events `{"token": ..., "done": false}`, the first shape most
  tutorials teach (/chat/stream, /anthropic/stream, /langchain/stream);
- `MetaEvents`: unnamed events tagged by an `"event"` field, with start and done metadata
  (/chat/stream-meta);
- `NamedEvents`: `event:` names with numbered `id:` lines from 1 (/chat/events, /relay/stream,
  /responses/stream, /chain/stream, /chain/events, resumable generations).

A shape instance lives for one stream (a shape may keep state, such as the next event id).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lessons.relay_core.errors import RelayError
from lessons.relay_core.events import CustomEvent, Frame, StreamItem, ToolCallDelta, Usage
from lessons.relay_core.wire import encode_json, frame, retry


@dataclass(slots=True)
class StreamSummary:
    """What the core knows about one stream so far; shapes read it to frame start and done."""

    request_id: str
    provider: str
    model: str
    started: float  # time.monotonic() when the request arrived
    first_token_at: float | None = None
    tokens: int = 0  # text pieces relayed (about one token each)
    usage: Usage | None = None  # the provider's own count, when it sent one
    finish_reason: str | None = None

    def ttft_ms(self) -> float:
        """Time to the first text; for a reply with no text, the whole wait."""
        end = self.first_token_at if self.first_token_at is not None else time.monotonic()
        return round((end - self.started) * 1000, 1)

    def latency_ms(self) -> float:
        return round((time.monotonic() - self.started) * 1000, 1)


class EventShape:
    """The framing of one route. Subclasses override what their clients see."""

    # Extra response headers the shape's clients expect.
    headers: dict[str, str] = {}  # noqa: RUF012 (read-only by convention)

    def start(self, summary: StreamSummary) -> bytes | None:
        """The first event, sent as soon as the provider has answered; None for no event."""
        return None

    def token(self, text: str) -> bytes:
        raise NotImplementedError

    def other(self, item: StreamItem, summary: StreamSummary) -> bytes | None:
        """Any other item (tool calls, reasoning, route events); None passes it over."""
        return None

    def done(self, summary: StreamSummary) -> bytes:
        """The terminal event of a complete reply."""
        raise NotImplementedError

    def error(self, error: RelayError, summary: StreamSummary) -> bytes:
        """The terminal event of a reply that failed after the stream started."""
        raise NotImplementedError

    def after_terminal(self) -> bytes | None:
        """Bytes after the terminal event, for protocols that end with a sentinel."""
        return None


class TokenEvents(EventShape):
    """`data: {"token": "...", "done": false}` per piece, then `{"token": "", "done": true}`;
    a failure ends with `{"error": message, "code", "request_id", "done": true}`."""

    def __init__(self, *, usage_in_done: bool = False) -> None:
        self.usage_in_done = usage_in_done

    def token(self, text: str) -> bytes:
        return b'data: {"token":' + encode_json(text) + b',"done":false}\n\n'

    def done(self, summary: StreamSummary) -> bytes:
        payload: dict[str, object] = {"token": "", "done": True}
        if self.usage_in_done and summary.usage is not None:
            payload["usage"] = _usage(summary.usage)
        return frame(encode_json(payload))

    def error(self, error: RelayError, summary: StreamSummary) -> bytes:
        body = {"error": error.message, "code": error.code, "request_id": error.request_id}
        return frame(encode_json({**body, "done": True}))


class TokenEventsWithUsage(TokenEvents):
    """TokenEvents whose done event also carries the provider's usage (/langchain/stream)."""

    def __init__(self) -> None:
        super().__init__(usage_in_done=True)


class MetaEvents(EventShape):
    """Unnamed events tagged `{"event": "start" | "token" | "done" | "error", ...}`."""

    def start(self, summary: StreamSummary) -> bytes:
        return frame(encode_json({"event": "start", "model": summary.model}))

    def token(self, text: str) -> bytes:
        return b'data: {"event":"token","token":' + encode_json(text) + b"}\n\n"

    def done(self, summary: StreamSummary) -> bytes:
        usage = summary.usage
        payload = {
            "event": "done",
            # The provider's own count of the reply's tokens: what it bills.
            "tokens": usage.output_tokens if usage is not None else 0,
            "latency_ms": summary.latency_ms(),
            "ttft_ms": summary.ttft_ms(),
        }
        return frame(encode_json(payload))

    def error(self, error: RelayError, summary: StreamSummary) -> bytes:
        payload = {
            "event": "error",
            "message": error.message,
            "code": error.code,
            "request_id": error.request_id,
        }
        return frame(encode_json(payload))


class NamedEvents(EventShape):
    """`event: start | token | tool_call | <custom> | usage | done | error`, ids from 1.

    The id of an event is its position in the stream, so a client that reconnects with
    `Last-Event-ID: n` has seen exactly the first n events. With `ids=False` the events carry
    no id: a generation's store gives each event its id as it stores it.
    """

    def __init__(self, *, ids: bool = True) -> None:
        self.next_id = 1 if ids else None

    def _named(self, name: str, payload: bytes) -> bytes:
        if self.next_id is None:
            return frame(payload, event=name)
        event_id = self.next_id
        self.next_id += 1
        return frame(payload, event=name, id=event_id)

    def start(self, summary: StreamSummary) -> bytes:
        meta = {"provider": summary.provider, "model": summary.model}
        return self._named("start", encode_json({**meta, "request_id": summary.request_id}))

    def token(self, text: str) -> bytes:
        payload = b'{"text":' + encode_json(text) + b"}"
        if self.next_id is None:
            return b"event: token\ndata: " + payload + b"\n\n"
        event_id = self.next_id
        self.next_id += 1
        return b"id: %d\nevent: token\ndata: %b\n\n" % (event_id, payload)

    def other(self, item: StreamItem, summary: StreamSummary) -> bytes | None:
        if isinstance(item, ToolCallDelta):
            payload = {
                "index": item.index,
                "id": item.id,
                "name": item.name,
                "arguments": item.arguments,
            }
            return self._named("tool_call", encode_json(payload))
        if isinstance(item, CustomEvent):
            return self._named(item.name, encode_json(item.data))
        return None  # reasoning is not the answer: passed over

    def done(self, summary: StreamSummary) -> bytes:
        usage = b""
        if summary.usage is not None:
            usage = self._named("usage", encode_json(_usage(summary.usage)))
        payload = {
            "finish_reason": summary.finish_reason,
            "ttft_ms": summary.ttft_ms(),
            "latency_ms": summary.latency_ms(),
        }
        return usage + self._named("done", encode_json(payload))

    def error(self, error: RelayError, summary: StreamSummary) -> bytes:
        payload = {"code": error.code, "message": error.message, "request_id": error.request_id}
        return self._named("error", encode_json(payload))


class ReplayEvents(EventShape):
    """A generation's stored events, replayed to one reader with the store's ids.

    The producer framed every event, its terminal event included, so a reader's `done` adds
    nothing; a reader's own failure (the store gone, the producer lost) is a final `error`.
    `retry_ms` is sent first: how soon EventSource reconnects after a dropped connection.
    """

    def __init__(self, *, retry_ms: int | None = None) -> None:
        self.retry_ms = retry_ms

    def start(self, summary: StreamSummary) -> bytes | None:
        return retry(self.retry_ms) if self.retry_ms is not None else None

    def token(self, text: str) -> bytes:  # a replay carries frames, never bare text
        raise TypeError("a replay has no tokens of its own")

    def other(self, item: StreamItem, summary: StreamSummary) -> bytes | None:
        if isinstance(item, Frame):
            return b"id: " + item.id.encode() + b"\n" + item.data
        return None

    def done(self, summary: StreamSummary) -> bytes:
        return b""

    def error(self, error: RelayError, summary: StreamSummary) -> bytes:
        payload = {"code": error.code, "message": error.message, "request_id": error.request_id}
        return frame(encode_json(payload), event="error")


def _usage(usage: Usage) -> dict[str, int]:
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
