"""Support for notebook 07 (one service, several workers): servers sharing one loop, a small
stand-in for Redis streams, reading exported metrics and the benchmark's stored results."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from lessons.relay_core import read_event
from lessons.toolkit.sse_parser import SSEDecoder, SSEEvent

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STORED_RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "service.json"


# --- several apps on one event loop -------------------------------------------------------------


@contextmanager
def serve_together(*apps: Any, startup_timeout: float = 15.0) -> Iterator[list[str]]:
    """Run `apps` with uvicorn on one event loop, in one background thread; yields their URLs.

    Two lesson apps that share one in-process store must run on one loop (the store's asyncio
    objects belong to the loop they were made on): two "workers" of one process, standing in
    for two processes that share Redis.
    """
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=0,
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=2,
            )
        )
        for app in apps
    ]

    async def main() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    thread = threading.Thread(
        target=asyncio.run, args=(main(),), daemon=True, name="serve-together"
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not all(server.started for server in servers):
        if not thread.is_alive() or time.monotonic() > deadline:
            for server in servers:
                server.should_exit = True
            thread.join(5)
            raise RuntimeError("the apps did not start (did a lifespan fail?)")
        time.sleep(0.01)
    try:
        yield [f"http://127.0.0.1:{s.servers[0].sockets[0].getsockname()[1]}" for s in servers]
    finally:
        for server in servers:
            server.should_exit = True
        thread.join(10)
        if thread.is_alive():
            for server in servers:
                server.force_exit = True
            thread.join(10)


# --- reading a generation -----------------------------------------------------------------------


@dataclass
class Read:
    """What one connection to a generation got."""

    status: int
    events: list[SSEEvent] = field(default_factory=list)
    served_by: str = ""
    generation_id: str = ""
    cut: bool = False  # the connection ended before a terminal event

    @property
    def text(self) -> str:
        return "".join(read_event(e.event, e.data).text for e in self.events)

    @property
    def last(self) -> Any:
        return read_event(self.events[-1].event, self.events[-1].data) if self.events else None

    @property
    def ids(self) -> list[str | None]:
        return [e.id for e in self.events]


def read_generation(
    url: str,
    *,
    headers: dict[str, str],
    body: Any = None,
    generation_id: str | None = None,
    last_event_id: str | None = None,
    until: int | None = None,
    timeout: float = 20.0,
) -> Read:
    """POST `body` (start a generation) or GET `generation_id`'s stream after `last_event_id`;
    read `until` events (all of them when None), then leave."""
    sent = dict(headers)
    if body is not None:
        method, target = "POST", f"{url}/chat/generations"
    else:
        method, target = "GET", f"{url}/chat/generations/{generation_id}/stream"
        if last_event_id is not None:
            sent["Last-Event-ID"] = last_event_id
    with (
        httpx.Client(timeout=timeout) as client,
        client.stream(method, target, json=body, headers=sent) as response,
    ):
        read = Read(
            response.status_code,
            served_by=response.headers.get("x-served-by", ""),
            generation_id=response.headers.get("x-generation-id", generation_id or ""),
        )
        if response.status_code != 200:
            response.read()
            return read
        decoder = SSEDecoder()
        try:
            for chunk in response.iter_raw():
                for event in decoder.feed(chunk):
                    if isinstance(event, SSEEvent):
                        read.events.append(event)
                if until is not None and len(read.events) >= until:
                    read.events = read.events[:until]
                    break
        except httpx.HTTPError:
            pass
        last = read.last
        read.cut = last is None or not last.terminal
        return read


# --- a stand-in for Redis streams, for exercise checks ------------------------------------------


class FakeStreams:
    """The stream commands of redis-py's asyncio client, in memory: `xadd`, `xrange`, `xlen`.

    Ids are `<ms>-<seq>` and grow like Redis' own; `xrange` takes `-`, `+`, an id (inclusive)
    or `(id` (exclusive), as Redis does. `xadd(..., maxlen=N, approximate=False)` trims exactly.
    """

    def __init__(self) -> None:
        self.streams: dict[str, list[tuple[bytes, dict[bytes, bytes]]]] = {}
        self._clock = 1_733_097_600_000
        self._sequence = 0

    def _next_id(self) -> bytes:
        self._sequence += 1
        if self._sequence == 3:  # a few entries share a millisecond, as they do in Redis
            self._clock, self._sequence = self._clock + 1, 0
        return f"{self._clock}-{self._sequence}".encode()

    async def xadd(
        self,
        name: str,
        fields: dict[Any, Any],
        maxlen: int | None = None,
        approximate: bool = True,
    ) -> bytes:
        entry_id = self._next_id()
        encoded = {_bytes(k): _bytes(v) for k, v in fields.items()}
        stream = self.streams.setdefault(name, [])
        stream.append((entry_id, encoded))
        if maxlen is not None and not approximate and len(stream) > maxlen:
            del stream[: len(stream) - maxlen]
        return entry_id

    async def xlen(self, name: str) -> int:
        return len(self.streams.get(name, []))

    async def xrange(
        self, name: str, min: str = "-", max: str = "+", count: int | None = None
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        low, low_open = _bound(min, "-")
        high, high_open = _bound(max, "+")
        found = []
        for entry_id, fields in self.streams.get(name, []):
            key = _key(entry_id.decode())
            if low is not None and (key < low or (low_open and key == low)):
                continue
            if high is not None and (key > high or (high_open and key == high)):
                continue
            found.append((entry_id, dict(fields)))
        return found[:count] if count is not None else found


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _key(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def _bound(value: Any, infinite: str) -> tuple[tuple[int, int] | None, bool]:
    text = value.decode() if isinstance(value, bytes) else str(value)
    if text == infinite:
        return None, False
    if text in ("-", "+"):
        raise ValueError(f"{text} is the other end of the range")
    exclusive = text.startswith("(")
    text = text.removeprefix("(")
    if not re.fullmatch(r"\d+(-\d+)?", text):
        raise ValueError(f"ERR Invalid stream ID specified as stream command argument: {text}")
    return _key(text), exclusive


# --- metrics ------------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of metric `name` in a Prometheus text exposition: (labels, value)."""
    found = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match["name"] == name:
            labels = dict(_LABEL.findall(match["labels"] or ""))
            found.append((labels, float(match["value"])))
    return found


def histogram(texts: Sequence[str], name: str) -> list[tuple[float, float]]:
    """A histogram summed over every series and every scrape in `texts`: (upper bound, count
    of observations at or below it), cumulative, as Prometheus exports it."""
    totals: dict[float, float] = {}
    for text in texts:
        for labels, value in samples(text, f"{name}_bucket"):
            bound = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
            totals[bound] = totals.get(bound, 0.0) + value
    return sorted(totals.items())


def quantile_from_buckets(buckets: list[tuple[float, float]], q: float) -> float:
    """A quantile estimated from cumulative buckets, as Prometheus' histogram_quantile does
    (linear within the bucket it falls in)."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return float("nan")
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return previous_bound
            share = (rank - previous_count) / max(count - previous_count, 1e-9)
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, count
    return previous_bound


# --- stored measurements ------------------------------------------------------------------------


def stored_results(path: Path = STORED_RESULTS) -> dict[str, Any]:
    """The benchmark's last recorded run (benchmarks/bench_service.py writes it)."""
    return json.loads(path.read_text(encoding="utf-8"))


__all__ = [
    "STORED_RESULTS",
    "FakeStreams",
    "Read",
    "histogram",
    "quantile_from_buckets",
    "read_generation",
    "samples",
    "serve_together",
    "stored_results",
]
