"""A streaming client that fails loudly: it times out, raises on every failure, returns the text.

The fixed twin of naive_client_pitfall.py. It reads every event shape of the wire contract
(docs/wire-contract.md) through relay_core's one classifier.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import EventSource, ServerSentEvent

from lessons.relay_core import read_event


class StreamError(Exception):
    """The stream did not deliver a complete reply."""


class StreamHTTPError(StreamError):
    """The server refused before streaming: a status and the error contract's JSON body."""

    def __init__(self, status: int, code: str | None, message: str, request_id: str | None):
        super().__init__(f"HTTP {status} {code or ''}: {message}".replace("  ", " "))
        self.status, self.code, self.request_id = status, code, request_id


class StreamErrorEvent(StreamError):
    """The stream started, then ended with a terminal error event."""

    def __init__(self, code: str | None, message: str, request_id: str | None, partial: str):
        super().__init__(f"error event {code}: {message}")
        self.code, self.request_id, self.partial_text = code, request_id, partial


class StreamIncomplete(StreamError):
    """The stream ended without a terminal event: the reply may be cut off."""


class StreamTimeout(StreamError):
    """The reply did not complete within the time allowed."""


def _http_error(response: httpx.Response) -> StreamHTTPError:
    try:
        error = response.json()["error"]
        return StreamHTTPError(
            response.status_code,
            error.get("code"),
            error.get("message", ""),
            error.get("request_id"),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        # Not the error contract (a proxy's HTML page, FastAPI's 422 detail): keep it short.
        return StreamHTTPError(response.status_code, None, response.text[:200], None)


class _Reply:
    """Reads the events of any route in the wire contract; knows when the reply ended."""

    def __init__(self, on_token: Callable[[str], Any] | None) -> None:
        self.parts: list[str] = []
        self.done = False
        self.on_token = on_token

    def take(self, sse: ServerSentEvent) -> None:
        if self.done:
            return  # Nothing after the terminal event counts.
        event = read_event(sse.event, sse.data)
        if event.kind == "error":
            raise StreamErrorEvent(
                event.code, event.message or "", event.request_id, "".join(self.parts)
            )
        if event.kind == "token" and event.text:
            self.parts.append(event.text)
            if self.on_token:
                self.on_token(event.text)
        if event.kind == "done":
            self.done = True

    def text(self) -> str:
        if not self.done:
            raise StreamIncomplete(
                f"the stream ended without a terminal event after {len(self.parts)} tokens"
            )
        return "".join(self.parts)


def stream_text(
    url: str,
    payload: dict[str, Any],
    *,
    timeout: float = 60.0,
    stall_timeout: float = 30.0,
    client: httpx.Client | None = None,
    on_token: Callable[[str], Any] | None = None,
) -> str:
    """POST `payload`, read the SSE reply, return its text; raise a StreamError on any failure.

    `stall_timeout` bounds the silence between two chunks (keep-alive comments count as
    traffic); `timeout` bounds the whole reply, checked as each event arrives.
    """
    deadline = time.monotonic() + timeout
    own = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(stall_timeout, connect=5.0))
    reply = _Reply(on_token)
    try:
        with http.stream("POST", url, json=payload) as response:
            if response.status_code != 200:
                response.read()
                raise _http_error(response)
            for sse in EventSource(response).iter_sse():
                reply.take(sse)
                if reply.done:
                    break
                if time.monotonic() > deadline:
                    raise StreamTimeout(f"no complete reply within {timeout:g} s")
    except httpx.TimeoutException as exc:
        raise StreamTimeout(f"no data for {stall_timeout:g} s") from exc
    except httpx.TransportError as exc:
        raise StreamIncomplete(f"connection failed mid-reply: {type(exc).__name__}") from exc
    finally:
        if own:
            http.close()
    return reply.text()


async def astream_text(
    url: str,
    payload: dict[str, Any],
    *,
    timeout: float = 60.0,  # noqa: ASYNC109 (a total deadline, applied with asyncio.timeout)
    stall_timeout: float = 30.0,
    client: httpx.AsyncClient | None = None,
    on_token: Callable[[str], Any] | None = None,
) -> str:
    """The async twin of `stream_text`; here `timeout` bounds the whole reply exactly."""
    own = client is None
    http = client or httpx.AsyncClient(timeout=httpx.Timeout(stall_timeout, connect=5.0))
    reply = _Reply(on_token)
    try:
        async with asyncio.timeout(timeout), http.stream("POST", url, json=payload) as response:
            if response.status_code != 200:
                await response.aread()
                raise _http_error(response)
            async for sse in EventSource(response).aiter_sse():
                reply.take(sse)
                if reply.done:
                    break
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise StreamTimeout(f"no complete reply within {timeout:g} s") from exc
    except httpx.TransportError as exc:
        raise StreamIncomplete(f"connection failed mid-reply: {type(exc).__name__}") from exc
    finally:
        if own:
            await http.aclose()
    return reply.text()
