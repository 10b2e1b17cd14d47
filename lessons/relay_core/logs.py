"""Structured server logs: one line per event, fields kept apart, nothing able to forge a line.

Every record the core writes carries its fields twice: as `record.fields` (a dict, for a JSON
formatter or a log shipper) and rendered into the message as `key=value` pairs, with line
breaks and control characters escaped, so that a provider's error text cannot start a second,
forged log line.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

logger = logging.getLogger("lessons.relay")

# A provider's error body can be long; the log needs the start of it, not all of it.
MAX_FIELD_CHARS = 500


def clean(value: Any) -> str:
    """One printable line: control characters escaped, long text cut with a marker."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_FIELD_CHARS:
        text = text[:MAX_FIELD_CHARS] + "...(cut)"
    if text.isprintable():
        return text
    # repr() escapes \n, \r, \t and every other non-printable character, quotes removed.
    return repr(text)[1:-1]


def log_event(level: int, event: str, /, **fields: Any) -> None:
    """Write `event` with `fields` at `level` to the relay's log."""
    if not logger.isEnabledFor(level):
        return
    rendered = " ".join(f"{key}={clean(value)}" for key, value in fields.items())
    logger.log(level, "%s %s", event, rendered, extra={"fields": {"event": event, **fields}})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update({key: value for key, value in fields.items() if key not in entry})
        else:
            entry["message"] = record.getMessage()
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
