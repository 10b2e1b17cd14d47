"""Server-Sent Events framing, and the headers every streaming response sends.

One event is field lines (`event:`, `data:`, `id:`, `retry:`) ended by a blank line; a line
starting with `:` is a comment that clients ignore. Payloads are JSON on one `data:` line: JSON
escapes line breaks inside strings, so a token holding "\\n\\n" can never end an event early. The
other fields are checked instead: an event name, id or comment with a line break would let a
caller forge events, so these functions refuse one.
"""

from __future__ import annotations

from typing import Any

import orjson

SSE_MEDIA_TYPE = "text/event-stream"

# no-cache: intermediaries must not store or coalesce the stream.
# X-Accel-Buffering: nginx (and proxies that honour it) must pass bytes on as they come.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode_json(payload: Any) -> bytes:
    """Compact JSON as UTF-8 bytes (orjson: about 20x faster than json.dumps on small dicts)."""
    return orjson.dumps(payload)


def _single_line(value: str, what: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"an SSE {what} cannot contain a line break")
    return value


def event_id(value: str | int) -> str:
    """An `id:` value: one line with no NUL, which EventSource would ignore."""
    text = _single_line(str(value), "id")
    if "\0" in text:
        raise ValueError("an SSE id cannot contain NUL")
    return text


def frame(payload: bytes, *, event: str | None = None, id: str | int | None = None) -> bytes:
    """One event from an already encoded payload (the hot path: no JSON work here)."""
    head = b""
    if id is not None:
        head += b"id: " + event_id(id).encode() + b"\n"
    if event is not None:
        head += b"event: " + _single_line(event, "event name").encode() + b"\n"
    return head + b"data: " + payload + b"\n\n"


def comment(text: str = "ping") -> bytes:
    """A comment line: clients ignore it, proxies see traffic (a keep-alive)."""
    return b": " + _single_line(text, "comment").encode() + b"\n\n"


def retry(milliseconds: int) -> bytes:
    """Tell EventSource how long to wait before it reconnects."""
    if milliseconds < 0:
        raise ValueError("retry cannot be negative")
    return b"retry: %d\n\n" % milliseconds


# Text versions of the same framing, for pitfall apps and notebook cells that print the wire.


def sse_data(payload: Any) -> str:
    """One unnamed event: `data: {json}` and the blank line that ends it."""
    return frame(encode_json(payload)).decode()


def sse_event(event: str, payload: Any, *, event_id: str | int | None = None) -> str:
    """One named event with an optional `id:` line (the client's Last-Event-ID on reconnect)."""
    return frame(encode_json(payload), event=event, id=event_id).decode()


def sse_comment(text: str = "ping") -> str:
    return comment(text).decode()
