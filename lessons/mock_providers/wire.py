"""SSE and JSON encoding, deterministic ids, and the interface each provider dialect implements."""

import functools
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from lessons.mock_providers.conversation import BadRequest, Conversation
from lessons.mock_providers.replies import Reply

# One streamed event, already encoded, and how many output tokens it carries (0 or 1).
StreamEvent = tuple[bytes, int]
Headers = list[tuple[bytes, bytes]]
ErrorKind = Literal["overloaded", "server_error"]

SSE_CONTENT_TYPE = b"text/event-stream; charset=utf-8"
JSON_CONTENT_TYPE = b"application/json"

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Anthropic ids use base58-like characters (no 0, O, I, l).
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_HEX = "0123456789abcdef"


def dumps(value: Any) -> str:
    """Compact JSON with raw UTF-8, the way both providers send it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def dumps_str(text: str) -> str:
    """`dumps` for a string, through the C encoder directly: it runs once per token."""
    return json.encoder.encode_basestring(text)


def sse(data: str, event: str | None = None) -> bytes:
    """One SSE event, ended by the blank line without which SDK decoders never dispatch it."""
    if event is None:
        return f"data: {data}\n\n".encode()
    return f"event: {event}\ndata: {data}\n\n".encode()


def header_list(headers: dict[str, str]) -> Headers:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


def mask_key(key: str | None) -> str:
    """An API key shown the way providers echo it in a 401: start and end only."""
    if not key:
        return ""
    if len(key) <= 8:
        return "*" * len(key)
    return key[:3] + "*" * 8 + key[-4:]


@functools.cache
def _byte_table(alphabet: str) -> bytes:
    """A bytes.translate table mapping every byte value to a character of the alphabet."""
    return bytes(ord(alphabet[value % len(alphabet)]) for value in range(256))


@dataclass(frozen=True)
class IdSource:
    """Ids for one request, derived from the instance's seed and the request's number."""

    seed: str
    number: int

    def make(self, prefix: str, length: int, alphabet: str = _BASE62) -> str:
        table = _byte_table(alphabet)
        chars = b""
        block = 0
        while len(chars) < length:
            digest = hashlib.sha256(f"{self.seed}/{self.number}/{prefix}/{block}".encode()).digest()
            chars += digest.translate(table)
            block += 1
        return prefix + chars[:length].decode()

    def base58(self, prefix: str, length: int) -> str:
        return self.make(prefix, length, _BASE58)

    def hex(self, prefix: str, length: int) -> str:
        return self.make(prefix, length, _HEX)


@dataclass(frozen=True)
class ReplyContext:
    """Everything a dialect needs to render one answer."""

    conversation: Conversation
    reply: Reply
    ids: IdSource
    request_id: str
    created: int
    input_tokens: int
    # The raw request body, for fields a response echoes (tools, instructions, ...).
    body: dict[str, Any]
    api_key: str | None
    # Scripted: send the fragments of parallel tool calls interleaved, not one call after another.
    interleave_tool_calls: bool = False


def call_ids(ids: IdSource, index: int) -> IdSource:
    """The id source of a reply's tool call number `index`: the first call keeps the request's
    own ids (as before parallel calls existed), later ones get their own."""
    return ids if index == 0 else IdSource(f"{ids.seed}/call{index}", ids.number)


@dataclass(frozen=True)
class ErrorResponse:
    """A complete non-streaming error answer."""

    status: int
    headers: Headers
    body: bytes


class Dialect(Protocol):
    """One provider API: how it reads requests and writes answers and errors."""

    endpoint: str
    provider: str

    def request_id(self, ids: IdSource) -> str: ...

    def invalid_json(self, detail: str) -> BadRequest:
        """The 400 for a body that is not a JSON object."""
        ...

    def parse(self, body: dict[str, Any]) -> Conversation:
        """The conversation a valid body asks for; raises BadRequest as the real API would."""
        ...

    def observed(self, body: dict[str, Any]) -> tuple[Any, Any]:
        """The request's messages and system prompt, as sent, for observations."""
        ...

    def success_headers(self, ctx: ReplyContext, stream: bool) -> Headers: ...

    def stream_events(self, ctx: ReplyContext) -> Iterator[StreamEvent]:
        """The stream's events, encoded one by one as the sender asks for them."""
        ...

    def stream_error(self, ctx: ReplyContext, kind: ErrorKind, events_sent: int) -> bytes:
        """The mid-stream error the real API sends, and whatever it sends after it."""
        ...

    def body(self, ctx: ReplyContext) -> bytes: ...

    def http_error(
        self,
        status: int,
        request_id: str,
        *,
        model: str | None,
        api_key: str | None,
        retry_after: float | None,
        should_retry: bool,
    ) -> ErrorResponse: ...

    def overload_status(self, kind: ErrorKind) -> int:
        """The HTTP status a non-streaming request gets in place of a mid-stream error."""
        ...

    def bad_request(self, error: BadRequest, request_id: str) -> ErrorResponse: ...

    def not_found(self, method: str, path: str, request_id: str) -> ErrorResponse: ...
