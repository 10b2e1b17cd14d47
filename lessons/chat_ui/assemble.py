"""UI message stream chunks -> the assistant message they build, as `useChat` builds it.

The server keeps each chat's messages, so that a reloaded page shows the whole conversation; the
assistant's reply is built here from the chunks the server streamed, following the rules of the
`ai` package's `processUIMessageStream`: a text or reasoning part per start/end pair, a tool part
that moves through `input-streaming`, `input-available`, then `output-available` or
`output-error`, data parts (updated in place when they carry an id; transient ones not kept),
`step-start` parts between steps, and the metadata of `start`, `message-metadata` and `finish`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def _merge(old: Any, new: Any) -> Any:
    if isinstance(old, dict) and isinstance(new, dict):
        merged = dict(old)
        for key, value in new.items():
            merged[key] = _merge(old.get(key), value)
        return merged
    return new


def _partial_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


class MessageAssembler:
    """Feed it chunks (parsed JSON), in order; `message` is the message so far."""

    def __init__(self, message_id: str = "") -> None:
        self.message: dict[str, Any] = {"id": message_id, "role": "assistant", "parts": []}
        self.finish_reason: str | None = None
        self.error: str | None = None  # the errorText of an `error` chunk
        self.aborted = False
        self._open: dict[str, dict[str, Any]] = {}  # text and reasoning parts, by chunk id
        self._calls: dict[str, dict[str, Any]] = {}  # tool parts, by toolCallId
        self._raw: dict[str, str] = {}  # tool input text so far, by toolCallId

    @property
    def parts(self) -> list[dict[str, Any]]:
        return self.message["parts"]

    def _metadata(self, metadata: Any) -> None:
        if metadata is not None:
            self.message["metadata"] = _merge(self.message.get("metadata"), metadata)

    def feed(self, chunk: dict[str, Any]) -> None:
        kind = chunk.get("type")
        if kind == "start":
            if chunk.get("messageId"):
                self.message["id"] = chunk["messageId"]
            self._metadata(chunk.get("messageMetadata"))
        elif kind == "start-step":
            self.parts.append({"type": "step-start"})
        elif kind in ("text-start", "reasoning-start"):
            part: dict[str, Any] = {"type": kind.removesuffix("-start"), "text": ""}
            if kind == "reasoning-start":
                part["id"] = chunk["id"]
            part["state"] = "streaming"
            self._open[chunk["id"]] = part
            self.parts.append(part)
        elif kind in ("text-delta", "reasoning-delta"):
            self._open[chunk["id"]]["text"] += chunk["delta"]
        elif kind in ("text-end", "reasoning-end"):
            self._open.pop(chunk["id"])["state"] = "done"
        elif kind == "tool-input-start":
            call = {
                "type": f"tool-{chunk['toolName']}",
                "toolCallId": chunk["toolCallId"],
                "state": "input-streaming",
            }
            self._calls[chunk["toolCallId"]] = call
            self._raw[chunk["toolCallId"]] = ""
            self.parts.append(call)
        elif kind == "tool-input-delta":
            call_id = chunk["toolCallId"]
            self._raw[call_id] += chunk["inputTextDelta"]
            self._calls[call_id].update(
                input=_partial_json(self._raw[call_id]), rawInput=self._raw[call_id]
            )
        elif kind in ("tool-input-available", "tool-input-error"):
            call = self._tool_part(chunk)
            call.pop("rawInput", None)
            call["input"] = chunk.get("input")
            if kind == "tool-input-available":
                call["state"] = "input-available"
            else:
                call.update(state="output-error", errorText=chunk["errorText"])
        elif kind == "tool-output-available":
            self._calls[chunk["toolCallId"]].update(
                state="output-available", output=chunk["output"]
            )
        elif kind == "tool-output-error":
            self._calls[chunk["toolCallId"]].update(
                state="output-error", errorText=chunk["errorText"]
            )
        elif kind == "finish":
            self.finish_reason = chunk.get("finishReason")
            self._metadata(chunk.get("messageMetadata"))
        elif kind == "message-metadata":
            self._metadata(chunk.get("messageMetadata"))
        elif kind == "error":
            self.error = chunk.get("errorText")
        elif kind == "abort":
            self.aborted = True
        elif isinstance(kind, str) and kind.startswith("data-") and not chunk.get("transient"):
            self._data(chunk)

    def _tool_part(self, chunk: dict[str, Any]) -> dict[str, Any]:
        call = self._calls.get(chunk["toolCallId"])
        if call is None:  # input announced whole, without a tool-input-start
            call = {"type": f"tool-{chunk['toolName']}", "toolCallId": chunk["toolCallId"]}
            self._calls[chunk["toolCallId"]] = call
            self.parts.append(call)
        return call

    def _data(self, chunk: dict[str, Any]) -> None:
        part_id = chunk.get("id")
        if part_id is not None:
            for part in self.parts:
                if part.get("type") == chunk["type"] and part.get("id") == part_id:
                    part["data"] = chunk.get("data")
                    return
        part = {"type": chunk["type"], "data": chunk.get("data")}
        if part_id is not None:
            part["id"] = part_id
        self.parts.append(part)


def assemble(chunks: Iterable[dict[str, Any]]) -> MessageAssembler:
    """The message built from `chunks` (what `readUIMessageStream` yields last)."""
    assembler = MessageAssembler()
    for item in chunks:
        assembler.feed(item)
    return assembler


def chunks_of(frames: Iterable[bytes]) -> list[dict[str, Any]]:
    """The chunks of stored SSE frames (`data: {json}`), without the `[DONE]` sentinel."""
    found = []
    for frame in frames:
        for line in frame.decode().splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                found.append(json.loads(line[6:]))
    return found
