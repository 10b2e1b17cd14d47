"""A Server-Sent Events client parser following the WHATWG "event stream interpretation" rules."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import httpx

__all__ = [
    "IncompleteEventError",
    "SSEComment",
    "SSEDecoder",
    "SSEEvent",
    "SSEItem",
    "aiter_sse",
    "format_sse",
    "iter_sse",
    "parse_sse",
]

# The spec recognises exactly these three line endings. str.splitlines() would also split on
# U+2028, U+0085, form feed and friends, which are ordinary characters inside SSE data.
_LINE_END = re.compile(r"\r\n|\r|\n")
_ANY_LINE_BREAK = re.compile(r"[\r\n]")


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event.

    ``id`` and ``retry`` are what this event's own ``id:``/``retry:`` lines said (``None`` when it
    had none, or only invalid ones); ``last_event_id`` is the stream's last event ID at dispatch,
    which persists across events as the spec requires (it is what a browser reports).
    """

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None
    last_event_id: str = ""

    def json(self) -> Any:
        """The data parsed as JSON."""
        return json.loads(self.data)


@dataclass(frozen=True)
class SSEComment:
    """A comment line (``: ping``): ``text`` follows the colon, one leading space removed."""

    text: str


SSEItem: TypeAlias = SSEEvent | SSEComment


class IncompleteEventError(ValueError):
    """The stream ended before the blank line that would have dispatched its last event."""

    def __init__(self, tail: str) -> None:
        super().__init__(f"stream ended in the middle of an event: {tail!r}")
        self.tail = tail


class SSEDecoder:
    """Incremental, push-style decoder: ``feed()`` chunks as they arrive, then ``close()``.

    After ``close()``, ``incomplete_tail`` holds the raw text (line endings normalised to LF) of
    the event the spec makes us discard because no blank line ended it, or ``None`` if the stream
    ended cleanly. With ``strict_eof=True``, ``close()`` raises ``IncompleteEventError`` instead.
    ``last_event_id`` and ``reconnection_time`` (the latest valid ``retry``, in ms) are the stream
    state a reconnecting client would use.
    """

    def __init__(self, include_comments: bool = False, *, strict_eof: bool = False) -> None:
        self.include_comments = include_comments
        self.strict_eof = strict_eof
        self.last_event_id = ""
        self.reconnection_time: int | None = None
        self.incomplete_tail: str | None = None
        # "utf-8-sig" strips one leading BOM (even split across chunks) and only at the start,
        # which is exactly the spec's rule; "replace" is the spec's UTF-8 decode error handling.
        self._text_decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._partial: list[str] = []  # pieces of the current, not yet terminated line
        self._skip_lf = False  # the previous chunk ended in CR: a leading LF completes that CRLF
        self._closed = False
        # Per-block buffers (a block is the lines between two blank lines).
        self._event_type = ""
        self._data: list[str] = []
        self._id_buffer = ""  # the spec's "last event ID buffer"
        self._event_id: str | None = None
        self._event_retry: int | None = None
        # Raw lines of the current block from its first field line on: comment-only keep-alives
        # without blank lines must not grow this forever, and they are no part of an event.
        self._block_lines: list[str] = []

    def feed(self, chunk: bytes | str) -> list[SSEItem]:
        """Decode one chunk; returns the events (and comments, if asked) it completed."""
        if self._closed:
            raise RuntimeError("feed() after close()")
        if isinstance(chunk, str):
            # Text takes the same path as bytes, so a str chunk after a split multibyte sequence,
            # or a BOM at the start of text, behaves exactly as it would on the wire.
            chunk = chunk.encode("utf-8", errors="surrogatepass")
        return self._feed_text(self._text_decoder.decode(chunk))

    def close(self) -> list[SSEItem]:
        """Signal end of stream. Always returns an empty list: the spec discards pending data."""
        if self._closed:
            return []
        self._closed = True
        # Only a cut-off multibyte sequence can be pending here; it decodes to U+FFFD.
        rest = self._text_decoder.decode(b"", final=True)
        if rest:
            self._partial.append(rest)
        partial = "".join(self._partial)
        self._partial.clear()
        if self._block_lines or partial:
            self.incomplete_tail = "".join(line + "\n" for line in self._block_lines) + partial
        if self.incomplete_tail is not None and self.strict_eof:
            raise IncompleteEventError(self.incomplete_tail)
        return []

    def _feed_text(self, text: str) -> list[SSEItem]:
        out: list[SSEItem] = []
        if not text:
            # Keep _skip_lf as it is: an empty chunk (or half a UTF-8 sequence) may sit between
            # the CR and the LF of one CRLF.
            return out
        if self._skip_lf and text[0] == "\n":
            text = text[1:]
        pos = 0
        for match in _LINE_END.finditer(text):
            line = text[pos : match.start()]
            if self._partial:
                self._partial.append(line)
                line = "".join(self._partial)
                self._partial.clear()
            self._process_line(line, out)
            pos = match.end()
        if pos < len(text):
            self._partial.append(text[pos:])
        # A CR at the very end already ended its line (so that event goes out now, not when the
        # next chunk arrives); remember it so an LF starting the next chunk is not a second line.
        self._skip_lf = text.endswith("\r")
        return out

    def _process_line(self, line: str, out: list[SSEItem]) -> None:
        if not line:
            self._dispatch(out)
            return
        if line[0] == ":":
            if self.include_comments:
                text = line[1:]
                out.append(SSEComment(text[1:] if text.startswith(" ") else text))
            if self._block_lines:
                self._block_lines.append(line)
            return
        self._block_lines.append(line)
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        # A NUL in an id is ignored: no Last-Event-ID header could carry it back on reconnect.
        elif name == "id" and "\0" not in value:
            self._id_buffer = value
            self._event_id = value
        # ASCII digits only: int() would also accept "+5", " 5", "1_0" and "５" ("" is no digit).
        elif name == "retry" and value.isascii() and value.isdigit():
            self.reconnection_time = int(value)
            self._event_retry = self.reconnection_time
        # Any other field, and an id or retry failing those checks, is ignored, as the spec says.

    def _dispatch(self, out: list[SSEItem]) -> None:
        # The ID buffer becomes the stream's last event ID even when nothing is dispatched.
        self.last_event_id = self._id_buffer
        if self._data:
            out.append(
                SSEEvent(
                    event=self._event_type or "message",
                    data="\n".join(self._data),
                    id=self._event_id,
                    retry=self._event_retry,
                    last_event_id=self.last_event_id,
                )
            )
        self._event_type = ""
        self._data = []
        self._event_id = None
        self._event_retry = None
        self._block_lines = []


def parse_sse(text: str | bytes, include_comments: bool = False) -> list[SSEItem]:
    """Parse a complete stream; an unterminated last event is discarded, as the spec says."""
    decoder = SSEDecoder(include_comments)
    return decoder.feed(text) + decoder.close()


def _field(name: str, value: str) -> str:
    return f"{name}: {value}\n" if value else f"{name}:\n"


def format_sse(event: SSEEvent | SSEComment) -> str:
    """Wire text for one event or comment, ending with its blank line (events) or LF (comments).

    Data is split on CRLF, CR and LF into one ``data:`` line each, so a CR in data comes back as
    LF. ``last_event_id`` is client state and is not written. Raises ``ValueError`` for what the
    wire cannot carry: a line break in ``event`` or ``id``, a NUL in ``id``, a negative retry.
    """
    if isinstance(event, SSEComment):
        # Several comment lines: a line break must never end the comment and start a field.
        return "".join(_field("", line) for line in _LINE_END.split(event.text))
    parts: list[str] = []
    if _ANY_LINE_BREAK.search(event.event):
        raise ValueError(f"event name contains a line break: {event.event!r}")
    if event.event != "message":
        parts.append(_field("event", event.event))
    if event.id is not None:
        if _ANY_LINE_BREAK.search(event.id) or "\0" in event.id:
            raise ValueError(f"id contains a line break or NUL: {event.id!r}")
        parts.append(_field("id", event.id))
    if event.retry is not None:
        if event.retry < 0:
            raise ValueError(f"retry must be a non-negative integer: {event.retry!r}")
        parts.append(_field("retry", str(event.retry)))
    parts.extend(_field("data", line) for line in _LINE_END.split(event.data))
    return "".join(parts) + "\n"


def iter_sse(
    response: httpx.Response, include_comments: bool = False, *, strict_eof: bool = False
) -> Iterator[SSEItem]:
    """Events (and comments, if asked) from a streaming httpx response, as each chunk arrives.

    Always decodes UTF-8 whatever charset the headers name, and does not check the content type:
    the spec defines the stream, and a test wants to see what a wrong server sent.
    """
    decoder = SSEDecoder(include_comments, strict_eof=strict_eof)
    # iter_bytes, not iter_raw, so a compressed stream is decompressed first.
    for chunk in response.iter_bytes():
        yield from decoder.feed(chunk)
    yield from decoder.close()


async def aiter_sse(
    response: httpx.Response, include_comments: bool = False, *, strict_eof: bool = False
) -> AsyncIterator[SSEItem]:
    """The async twin of ``iter_sse``."""
    decoder = SSEDecoder(include_comments, strict_eof=strict_eof)
    async for chunk in response.aiter_bytes():
        for item in decoder.feed(chunk):
            yield item
    for item in decoder.close():
        yield item
