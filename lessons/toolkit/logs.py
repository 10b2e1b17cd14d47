"""The server log of a notebook's background apps: kept in memory, shown on purpose, never on
stderr (a warning printed there would land in whichever cell is running, and in its stored
output)."""

from __future__ import annotations

import logging
import threading
from collections import deque

# The loggers of the lesson apps and the core.
LOGGERS = ("lessons",)


class ServerLog(logging.Handler):
    """The last records of the lesson apps, in memory."""

    def __init__(self, capacity: int = 2_000) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: deque[logging.LogRecord] = deque(maxlen=capacity)
        self._lock_records = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock_records:
            self.records.append(record)

    def clear(self) -> None:
        with self._lock_records:
            self.records.clear()

    def lines(self, *, event: str | None = None, contains: str | None = None) -> list[str]:
        """The records' messages, optionally only one event's (`stream_end`, `usage`, ...)."""
        with self._lock_records:
            records = list(self.records)
        found = []
        for record in records:
            fields = getattr(record, "fields", {}) or {}
            if event is not None and fields.get("event") != event:
                continue
            message = record.getMessage()
            if contains is None or contains in message:
                found.append(f"{record.levelname} {message}")
        return found


_installed: ServerLog | None = None


def keep_server_log(level: int = logging.INFO) -> ServerLog:
    """Send the lesson apps' log records to memory instead of stderr; returns the keeper.

    Called by `use_providers()` in every notebook's setup cell, so it runs once per kernel; a
    notebook reads what happened with `server_log().lines(event="stream_end")`.
    """
    global _installed
    if _installed is None:
        _installed = ServerLog()
        for name in LOGGERS:
            logger = logging.getLogger(name)
            logger.addHandler(_installed)
            logger.setLevel(level)
            # Not passed on to the root logger, whose last-resort handler writes to stderr.
            logger.propagate = False
    return _installed


def server_log() -> ServerLog:
    return keep_server_log()
