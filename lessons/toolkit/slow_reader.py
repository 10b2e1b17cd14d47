"""A client that reads slowly, on a raw socket: how many HTTP chunks (writes) carried a reply.

Each `send()` of a streaming ASGI response becomes one HTTP/1.1 chunk on the wire, so counting
the chunks of a reply counts the relay's writes. Reading slowly (a small receive buffer, a pause
between reads) makes the relay's writes wait, which is when coalescing shows.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Any

from lessons.relay_core.contract import read_event


@dataclass(frozen=True)
class ChunkCount:
    chunks: int  # HTTP chunks that carried data: the relay's writes
    tokens: int  # token events in the reply
    terminal: str | None  # "done" or "error", if the reply ended with one
    seconds: float

    @property
    def tokens_per_write(self) -> float:
        return self.tokens / max(self.chunks, 1)


def _body_events(body: bytes) -> tuple[int, str | None]:
    tokens, terminal = 0, None
    for block in body.split(b"\n\n"):
        lines = block.decode("utf-8", "replace").split("\n")
        name = next((ln[7:] for ln in lines if ln.startswith("event: ")), None)
        data = "\n".join(ln[6:] for ln in lines if ln.startswith("data: "))
        if not data:
            continue
        event = read_event(name, data)
        if event.kind == "token":
            tokens += 1
        elif event.terminal:
            terminal = event.kind
    return tokens, terminal


def count_writes(
    url: str,
    path: str,
    payload: dict[str, Any],
    *,
    pause_s: float = 0.0,
    read_bytes: int = 65_536,
    rcvbuf: int | None = None,
    timeout_s: float = 30.0,
) -> ChunkCount:
    """POST `payload` and read the chunked reply `read_bytes` at a time, pausing between reads."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(payload).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    started = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout_s)
        sock.connect((host, int(port)))
        sock.sendall(head + body)
        raw = bytearray()
        while True:
            data = sock.recv(read_bytes)
            if not data:
                break
            raw += data
            if raw.endswith(b"\r\n0\r\n\r\n"):
                break
            if pause_s:
                time.sleep(pause_s)
    chunks, content = 0, bytearray()
    rest = bytes(raw).split(b"\r\n\r\n", 1)[1]
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        chunks += 1
        content += rest[:size]
        rest = rest[size + 2 :]
    tokens, terminal = _body_events(bytes(content))
    return ChunkCount(chunks, tokens, terminal, time.monotonic() - started)
