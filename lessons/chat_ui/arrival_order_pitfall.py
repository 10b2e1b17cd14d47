"""Wrong: assembles tool-call pieces in arrival order, which garbles interleaved parallel calls.

Each fragment is appended to the call that started last. Every recorded OpenAI and Anthropic
stream sends parallel calls one after the other, so this passes every test written against
them; a server that interleaves the calls' fragments (some OpenAI-compatible servers do, and the
mock does when a rule says `interleave_tool_calls=True`) gives one call both inputs and the other
none. A fragment says which call it belongs to (`index`): key by that, never by order.
"""

from __future__ import annotations

from typing import Any

from lessons.relay_core import ToolCallDelta


def assemble_by_arrival(deltas: list[ToolCallDelta]) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    for delta in deltas:
        if delta.name is not None:  # a call starts
            calls.append({"id": delta.id, "name": delta.name, "arguments": ""})
        if calls:
            calls[-1]["arguments"] += delta.arguments
    return calls
