"""Notebook 08's helpers: talk to `/api/chat` as `useChat` does, read and plot what comes back.

- `turn_body(...)`: the body useChat's default transport sends for one user message;
- `ui_turn(url, body)`: stream it with the test kit, and keep each chunk with its arrival time;
- `plot_turn(turn)`: a timeline of one turn: tool input pieces, the tool run, output, text.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from lessons.toolkit.testkit import StreamRecord, collect_sync
from lessons.toolkit.timing import start_axes_at_zero

_ids = itertools.count(1)


def user_message(text: str, message_id: str | None = None) -> dict[str, Any]:
    """A user's UIMessage, as useChat's `sendMessage({text})` makes it."""
    return {
        "id": message_id or f"user-{next(_ids)}",
        "role": "user",
        "parts": [{"type": "text", "text": text}],
    }


def turn_body(
    text: str,
    *,
    chat_id: str = "notebook-chat",
    history: list[dict[str, Any]] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """`{id, messages, trigger, messageId?, ...}`: one turn of useChat's default transport, with
    this app's own options (`provider`, `tools`, `reasoning`, `max_tokens`)."""
    return {
        "id": chat_id,
        "messages": [*(history or []), user_message(text)],
        "trigger": "submit-message",
        **options,
    }


@dataclass
class UITurn:
    """One streamed turn: the record, and its chunks (parsed) with their arrival times."""

    record: StreamRecord
    chunks: list[dict[str, Any]]
    times_ms: list[float]  # milliseconds after the request was sent, one per chunk

    @property
    def raw(self) -> bytes:
        return self.record.raw

    def types(self) -> list[str]:
        return [c["type"] for c in self.chunks]

    def text(self) -> str:
        return "".join(c["delta"] for c in self.chunks if c["type"] == "text-delta")

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [c for c in self.chunks if c["type"] == kind]

    def ends_with_done_sentinel(self) -> bool:
        return bool(self.record.events) and self.record.events[-1].data == "[DONE]"


def ui_turn(url: str, body: dict[str, Any], **options: Any) -> UITurn:
    """POST a turn and read its whole stream (the test kit's `collect_sync`, with its bounds)."""
    record = collect_sync(url, body, **options)
    chunks, times = [], []
    for event, offset in zip(record.events, record.offsets_ms(), strict=True):
        if event.data != "[DONE]":
            chunks.append(json.loads(event.data))
            times.append(offset)
    return UITurn(record, chunks, times)


def chunk_rows(turn: UITurn, *, limit: int | None = None) -> list[list[object]]:
    """Rows for `show_table`: each chunk's number, type and other fields (the random message id
    shown as `msg-...`), the text deltas of a part folded into one row."""
    rows: list[list[object]] = []
    for number, chunk in enumerate(turn.chunks, start=1):
        fields = {k: v for k, v in chunk.items() if k != "type"}
        if "messageId" in fields:
            fields["messageId"] = "msg-..."
        shown = json.dumps(fields, ensure_ascii=False)
        previous = rows[-1] if rows else None
        if chunk["type"] in ("text-delta", "reasoning-delta", "tool-input-delta") and (
            previous is not None and previous[1] == chunk["type"]
        ):
            previous[0] = f"{str(previous[0]).split('-')[0]}-{number}"
            previous[2] = "(several)"
            continue
        rows.append([number, chunk["type"], shown if len(shown) <= 90 else shown[:87] + "..."])
    return rows[:limit] if limit else rows


# Where each kind of chunk is drawn on the timeline, and its colour.
_ROWS = {
    "tool-input-start": ("tool input", "tab:blue"),
    "tool-input-delta": ("tool input", "tab:blue"),
    "tool-input-available": ("tool runs", "tab:orange"),
    "data-tool-progress": ("tool runs", "tab:orange"),
    "tool-output-available": ("tool output", "tab:green"),
    "tool-output-error": ("tool output", "tab:red"),
    "tool-input-error": ("tool output", "tab:red"),
    "reasoning-delta": ("reasoning", "tab:purple"),
    "text-delta": ("text", "tab:gray"),
}


def plot_turn(turn: UITurn, *, title: str = "One turn with tools, chunk by chunk"):
    """A row per stage of the turn; one tick per chunk, at its arrival; steps as lines."""
    import matplotlib.pyplot as plt

    rows = ["tool input", "tool runs", "tool output", "reasoning", "text"]
    present = [r for r in rows if any(_ROWS.get(t, ("",))[0] == r for t in turn.types())]
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.55 * len(present)))
    for chunk, at in zip(turn.chunks, turn.times_ms, strict=True):
        row = _ROWS.get(chunk["type"])
        if row is not None and row[0] in present:
            ax.scatter([at], [present.index(row[0])], marker="|", s=260, color=row[1])
        elif chunk["type"] == "start-step":
            ax.axvline(at, color="black", alpha=0.25, linestyle="--")
    ax.set_yticks(range(len(present)), present)
    ax.set_ylim(-0.6, len(present) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds since the request was sent (dashed: a step starts)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    start_axes_at_zero(ax)
    fig.tight_layout()
    return fig


__all__ = ["UITurn", "chunk_rows", "plot_turn", "turn_body", "ui_turn", "user_message"]
