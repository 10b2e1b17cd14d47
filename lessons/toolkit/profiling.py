"""Where a relay's CPU goes, layer by layer: cProfile on the server's own thread, summed by package.

A relay's work per token runs on the event loop thread of its server: the HTTP client reading the
provider, the SDK decoding SSE and building its models, the relay's own code, JSON framing, and
uvicorn writing to the client. `profile_relay()` profiles that thread while some streams run and
attributes each function's own time to the layer its file belongs to.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# First match wins: the order matters where one package's path contains another's name.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SSE decoding (SDK)", ("openai/_streaming", "anthropic/_streaming")),
    ("SDK request preparation", ("openai/_utils/_transform", "anthropic/_utils/_transform")),
    ("SDK chunk models", ("pydantic", "openai/_models", "openai/types", "anthropic/_models",
                          "anthropic/types", "openai/_response", "openai/_base_client",
                          "anthropic/_base_client", "openai/_utils", "anthropic/_utils",
                          "openai/_compat", "anthropic/_compat", "/typing.py",
                          "typing_extensions", "/inspect.py")),
    ("HTTP client", ("httpx2", "httpcore2", "httpx/", "httpcore/", "h11/", "anyio/", "aiohttp",
                     "sniffio")),
    ("relay core", ("lessons/relay_core",)),
    ("lesson route and adapter", ("lessons/",)),
    ("JSON", ("json/",)),
    ("ASGI server and framework", ("uvicorn", "starlette", "fastapi")),
    ("event loop", ("asyncio/", "selectors", "uvloop")),
)  # fmt: skip
BUILTIN_LAYERS = (
    ("JSON", ("orjson", "json", "loads", "dumps", "encode", "decode")),
    ("sockets (system calls)", ("socket", "recv", "send", "select", "epoll")),
)


def layer_of(filename: str, function: str) -> str:
    if filename == "~":  # a builtin: attributed by what it is
        for layer, words in BUILTIN_LAYERS:
            if any(word in function for word in words):
                return layer
        return "other builtins"
    path = filename.replace("\\", "/")
    for layer, parts in LAYERS:
        if any(part in path for part in parts):
            return layer
    return "other Python"


@dataclass(frozen=True)
class Profile:
    """CPU time by layer (seconds) for a number of relayed tokens."""

    seconds: dict[str, float]
    tokens: int

    def us_per_token(self) -> dict[str, float]:
        return {layer: s / self.tokens * 1e6 for layer, s in self.seconds.items()}

    def total_us_per_token(self) -> float:
        return sum(self.seconds.values()) / self.tokens * 1e6

    def rows(self) -> list[list[str]]:
        total = sum(self.seconds.values()) or 1.0
        ordered = sorted(self.seconds.items(), key=lambda kv: -kv[1])
        return [
            [layer, f"{s / self.tokens * 1e6:.0f} us", f"{s / total:.0%}"]
            for layer, s in ordered
            if s / total >= 0.005
        ]


class ProfiledApp:
    """Wraps an ASGI app; `start()`/`stop()` profile the thread its event loop runs on."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None
        self.profiler = _profiler()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)

    def _on_loop(self, call: Any) -> None:
        assert self.loop is not None, "serve the app and send it a request first"
        done = asyncio.run_coroutine_threadsafe(_run(call), self.loop)
        done.result(timeout=10)

    def start(self) -> None:
        self.profiler = _profiler()
        self._on_loop(self.profiler.enable)

    def stop(self) -> pstats.Stats:
        self._on_loop(self.profiler.disable)
        return pstats.Stats(self.profiler)


def _profiler() -> cProfile.Profile:
    # CPU time of the profiled thread only: waiting in epoll costs nothing, and the mock or the
    # client running in other threads of this process do not count.
    return cProfile.Profile(time.thread_time_ns, 1e-9)


async def _run(call: Any) -> None:
    call()


def by_layer(stats: pstats.Stats, tokens: int) -> Profile:
    seconds: dict[str, float] = {}
    for (filename, _line, function), (_cc, _nc, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        layer = layer_of(filename, function)
        seconds[layer] = seconds.get(layer, 0.0) + own
    return Profile(seconds, tokens)


def merge(profiles: Sequence[Profile]) -> Profile:
    seconds: dict[str, float] = {}
    for profile in profiles:
        for layer, s in profile.seconds.items():
            seconds[layer] = seconds.get(layer, 0.0) + s
    return Profile(seconds, sum(p.tokens for p in profiles))


def time_inside(stats: pstats.Stats, path_part: str, function: str) -> float:
    """Seconds spent inside `function` (of a file whose path contains `path_part`), with all it
    called: cumulative time, counted once however deeply the function recursed."""
    total = 0.0
    for (filename, _line, name), (_cc, _nc, _own, cumulative, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if name == function and path_part in filename.replace("\\", "/"):
            total += cumulative
    return total
