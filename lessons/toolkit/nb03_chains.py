"""Notebook 03's helpers: what a client got from one request, and the server's own error log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from lessons.toolkit.sse_parser import SSEEvent
from lessons.toolkit.testkit import StreamRecord, classify, collect


@contextmanager
def uvicorn_errors() -> Iterator[list[str]]:
    """Keep the server's "Exception in ASGI application" records in a list while the block runs.

    An app that lets an exception escape (a first version, on purpose) makes uvicorn log it with
    its traceback; kept here, it can be counted in a notebook instead of landing on its stderr.
    """
    caught: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record.getMessage().strip())

    logger = logging.getLogger("uvicorn.error")
    handler, propagate = Keep(level=logging.ERROR), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield caught
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def ending(record: StreamRecord) -> str:
    """How a stream ended, as a client reading the wire contract sees it."""
    if not record.events:
        return "no event"
    last = classify(record.events[-1])
    if last.kind == "done":
        return "done"
    if last.kind == "error":
        return f"error event: {last.code}"
    return "no terminal event"


def _tokens(events: list[SSEEvent]) -> int:
    return sum(1 for event in events if classify(event).text)


async def reply_outcome(url: str, body: Any) -> list[str]:
    """One request, summed up for a table: [HTTP status, tokens received, how it ended]."""
    statuses: list[int] = []
    seen: list[SSEEvent] = []

    async def note_status(response: httpx.Response) -> None:
        statuses.append(response.status_code)

    async with httpx.AsyncClient(timeout=30, event_hooks={"response": [note_status]}) as client:
        try:
            record = await collect(
                url, body, client=client, on_event=lambda event, _at: seen.append(event)
            )
        except httpx.RemoteProtocolError:
            # The server dropped the connection in the middle of the body.
            status = str(statuses[0]) if statuses else "none"
            return [status, str(_tokens(seen)), "the connection broke"]
    if record.status != 200:
        return [str(record.status), "0", f"JSON error: {record.body_json()['error']['code']}"]
    return [str(record.status), str(_tokens(record.events)), ending(record)]
