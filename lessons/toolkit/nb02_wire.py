"""Raw provider streams for notebook 02: what each API sends, read with plain httpx and printed
without the fields that change on every run (ids, timestamps, padding) or repeat on every event.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from lessons.toolkit.sse_parser import SSEEvent, aiter_sse

# Left out: what changes on every run (ids, timestamps, padding) and what repeats on every event.
NOISE = frozenset(
    {
        "id",
        "created",
        "created_at",
        "obfuscation",
        "system_fingerprint",
        "signature",
        "completed_at",
        "object",
        "model",
        "service_tier",
        "item_id",
        "logprobs",
        "annotations",
    }
)


def scrub(value: Any, top: bool = True) -> Any:
    """The JSON without noise, null fields, and the top-level `type` (it repeats the event name)."""
    if isinstance(value, dict):
        return {
            k: scrub(v, False)
            for k, v in value.items()
            if k not in NOISE and v is not None and not (top and k == "type")
        }
    if isinstance(value, list):
        return [scrub(v, False) for v in value]
    return value


async def raw_events(url: str, headers: dict[str, str], body: dict[str, Any]) -> list[SSEEvent]:
    """POST one streaming request to a provider's API and collect its events as sent."""
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("POST", url, headers=headers, json=body) as response,
    ):
        return [e async for e in aiter_sse(response) if isinstance(e, SSEEvent)]


def show_events(events: list[SSEEvent], first: int = 5, last: int = 3, width: int = 110) -> None:
    """Print the first and last events, one line each: the event name, then its scrubbed data."""
    print(len(events), "events")
    shown: list[SSEEvent | None] = list(events)
    if len(events) > first + last:
        shown = [*events[:first], None, *events[-last:]]
    for event in shown:
        if event is None:
            print(f"   ... {len(events) - first - last} more like these ...")
            continue
        data = event.data if event.data == "[DONE]" else json.dumps(scrub(json.loads(event.data)))
        line = f"{event.event:<29} {data}"
        print(line if len(line) <= width else line[: width - 3] + "...")


def outline(names: list[str]) -> str:
    """Event names in order, runs collapsed: "start, token x9, usage, done"."""
    runs: list[list[Any]] = []
    for name in names:
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    return ", ".join(name if count == 1 else f"{name} x{count}" for name, count in runs)


def describe_items(items: list[Any]) -> list[str]:
    """An adapter's items, one line per run: text pieces joined, a tool call's pieces joined into
    its arguments (ids vary per request: shown only as present or not), the rest as they are."""
    from lessons.relay_core import Reasoning, Token, ToolCallDelta

    lines: list[str] = []
    run: list[Any] = []

    def flush() -> None:
        if not run:
            return
        first = run[0]
        if isinstance(first, Token | Reasoning):
            text = "".join(item.text for item in run)
            lines.append(f"{type(first).__name__} x{len(run)}: {text!r}")
        else:
            arguments = "".join(item.arguments for item in run)
            has_id = "an id" if first.id else "no id"
            lines.append(
                f"ToolCallDelta x{len(run)}: call {first.index}, {first.name!r}, {has_id}, "
                f"arguments {arguments!r}"
            )
        run.clear()

    for item in items:
        same = run and (
            type(item) is type(run[0])
            and (not isinstance(item, ToolCallDelta) or item.index == run[0].index)
        )
        if isinstance(item, Token | Reasoning | ToolCallDelta) and (same or not run):
            run.append(item)
            continue
        flush()
        if isinstance(item, Token | Reasoning | ToolCallDelta):
            run.append(item)
        else:
            lines.append(repr(item))
    flush()
    return lines
