"""Read any event of the wire contract (docs/wire-contract.md): one classifier for every shape.

A client of the workbook's routes (a test, the lesson's test client, a notebook's timeline)
asks one question of each event: is it text, the end, a failure, or something else? The answer
depends on the route's shape, and this is the one place that knows the shapes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["start", "token", "done", "error", "other"]
TERMINAL: frozenset[Kind] = frozenset({"done", "error"})

# The AI SDK's UI message stream (notebook 08): `data: {"type": ...}` chunks, then [DONE].
_UI_TERMINALS = {"finish": "done", "error": "error", "abort": "error"}


@dataclass(frozen=True)
class WireEvent:
    """One event, classified."""

    kind: Kind
    text: str = ""  # the text of a token event
    code: str | None = None  # an error's code
    message: str | None = None  # an error's fixed message
    request_id: str | None = None
    data: Any = field(default=None, repr=False)  # the parsed payload

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL


def _json(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data


def read_event(name: str | None, data: str) -> WireEvent:
    """Classify one event from its `event:` name (None or "message" when unnamed) and data."""
    payload = _json(data)
    fields: dict[str, Any] = payload if isinstance(payload, dict) else {}
    if name in (None, "", "message"):
        return _unnamed(fields, payload)
    if name == "token":
        return WireEvent("token", text=str(fields.get("text", "")), data=payload)
    if name == "error":
        return _error(fields, payload, fields.get("message"))
    if name in ("start", "done"):
        return WireEvent(name, data=payload)  # type: ignore[arg-type]
    return WireEvent("other", data=payload)


def _unnamed(fields: dict[str, Any], payload: Any) -> WireEvent:
    tagged = fields.get("event")
    ui_type = fields.get("type")
    if "error" in fields and isinstance(fields["error"], str):
        # TokenEvents: {"error": message, "code", "request_id", "done": true}
        return _error(fields, payload, fields["error"])
    if tagged in ("start", "token", "done", "error"):
        # MetaEvents: {"event": ..., ...}
        if tagged == "error":
            return _error(fields, payload, fields.get("message"))
        return WireEvent(tagged, text=str(fields.get("token", "")), data=payload)
    if isinstance(ui_type, str):
        if ui_type == "text-delta":
            return WireEvent("token", text=str(fields.get("delta", "")), data=payload)
        if ui_type in _UI_TERMINALS:
            kind = _UI_TERMINALS[ui_type]
            if kind == "error":
                return _error(fields, payload, fields.get("errorText") or fields.get("reason"))
            return WireEvent("done", data=payload)
        return WireEvent("start" if ui_type == "start" else "other", data=payload)
    if fields.get("done") is True:
        return WireEvent("done", data=payload)
    if isinstance(fields.get("token"), str):
        return WireEvent("token", text=fields["token"], data=payload)
    return WireEvent("other", data=payload)


def _error(fields: dict[str, Any], payload: Any, message: Any) -> WireEvent:
    return WireEvent(
        "error",
        code=fields.get("code"),
        message=str(message) if message is not None else None,
        request_id=fields.get("request_id"),
        data=payload,
    )
