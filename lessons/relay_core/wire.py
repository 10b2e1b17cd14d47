"""Server-Sent Events framing and the headers every streaming route sends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

SSE_MEDIA_TYPE = "text/event-stream"

# no-cache: intermediaries must not store or coalesce the stream.
# X-Accel-Buffering: nginx (and proxies that honour it) must pass bytes on as they come.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _json(payload: Any) -> str:
    # json.dumps escapes newlines inside strings, so one event is always one `data:` line and a
    # token that contains "\n\n" can never end the event early.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def sse_data(payload: Any) -> str:
    """One unnamed event: `data: {json}` and the blank line that ends it."""
    return f"data: {_json(payload)}\n\n"


def sse_event(event: str, payload: Any, *, event_id: str | int | None = None) -> str:
    """One named event with an optional `id:` line (the client's Last-Event-ID on reconnect)."""
    if "\n" in event or "\r" in event:
        raise ValueError("an SSE event name cannot contain a line break")
    id_line = f"id: {event_id}\n" if event_id is not None else ""
    return f"{id_line}event: {event}\ndata: {_json(payload)}\n\n"


def sse_comment(text: str = "ping") -> str:
    """A comment line: clients ignore it, proxies see traffic (a keep-alive)."""
    return f": {text}\n\n"


def streaming_response(
    events: AsyncIterator[str], *, request_id: str, status_code: int = 200
) -> StreamingResponse:
    """Wrap an async generator of SSE text in a response with the streaming headers."""
    return StreamingResponse(
        events,
        status_code=status_code,
        media_type=SSE_MEDIA_TYPE,
        headers={**STREAM_HEADERS, "X-Request-ID": request_id},
    )
