"""Checkers for notebook 06's exercises: an nginx location block, and Stop's server side."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from openai.types.chat import ChatCompletionChunk
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from lessons.toolkit.background import BackgroundServer
from lessons.toolkit.exercises import NotYet
from lessons.toolkit.nginx import nginx_available, run_nginx
from lessons.toolkit.sse_parser import parse_sse

# --- streaming_location -----------------------------------------------------------------------

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(value: str) -> float | None:
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value)
    if not match:
        return None
    return int(match[1]) * _UNITS[match[2] or "s"]


def _directives(block: str) -> tuple[str, list[str], dict[str, list[list[str]]]]:
    """The location's path arguments and its directives (name -> list of argument lists)."""
    text = re.sub(r"#[^\n]*", "", block).strip()
    match = re.fullmatch(r"location\s+([^{]*?)\s*\{(.*)\}", text, flags=re.S)
    if not match:
        raise NotYet("return one `location ... { ... }` block (nothing before or after it)")
    args = match[1].split()
    body = match[2]
    if "{" in body or "}" in body:
        raise NotYet("keep it to one location block without nested blocks")
    found: dict[str, list[list[str]]] = {}
    for statement in body.split(";"):
        words = statement.split()
        if words:
            found.setdefault(words[0], []).append(words[1:])
    if body.strip() and not body.strip().endswith(";"):
        raise NotYet("every directive ends with a semicolon `;`")
    return match[0], args, found


def _check_statically(block: str) -> None:
    _, args, found = _directives(block)
    path = args[-1] if args else ""
    modifier = args[0] if len(args) == 2 else ""
    if modifier not in ("", "=", "^~") or not (
        path == "/chat/stream" or (modifier != "=" and "/chat/stream".startswith(path))
    ):
        raise NotYet(f"the location `{' '.join(args)}` does not match /chat/stream")
    if found.get("proxy_pass") != [["http://relay"]]:
        raise NotYet(
            "proxy to the upstream with exactly `proxy_pass http://relay;` (a URI after the "
            "host, such as http://relay/, would rewrite the request path)"
        )
    if found.get("proxy_buffering") != [["off"]]:
        raise NotYet(
            "nginx buffers proxied responses by default; without `proxy_buffering off;` a "
            "client gets every token at once unless the app remembers X-Accel-Buffering: no"
        )
    if found.get("proxy_http_version") != [["1.1"]]:
        raise NotYet(
            "nginx talks HTTP/1.0 to the upstream by default: one new connection per request. "
            "Add `proxy_http_version 1.1;`"
        )
    headers = {a[0].lower(): a[1:] for a in found.get("proxy_set_header", []) if a}
    if headers.get("connection") not in ([""], ['""'], ["''"]):
        raise NotYet(
            'with HTTP/1.1, also clear the Connection header (`proxy_set_header Connection "";`)'
            ", or nginx sends `Connection: close` and the upstream keep-alive never happens"
        )
    for value in found.get("proxy_read_timeout", []):
        seconds = _seconds(value[0]) if value else None
        if seconds is None or seconds < 60:
            raise NotYet(
                f"proxy_read_timeout {' '.join(value)} is shorter than nginx's default 60s: a "
                "model that thinks for a while would have its stream cut"
            )
    if found.get("gzip") == [["on"]] and found.get("proxy_buffering") != [["off"]]:
        raise NotYet("gzip on a buffered stream: turn buffering off")


async def _slow_events(request: Request) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        for number in range(8):
            yield f"data: {json.dumps({'token': f't{number} ', 'done': False})}\n\n"
            await asyncio.sleep(0.04)
        yield f"data: {json.dumps({'token': '', 'done': True})}\n\n"

    # Deliberately no X-Accel-Buffering: the block itself must make nginx stream.
    return StreamingResponse(events(), media_type="text/event-stream")


def _check_with_nginx(block: str) -> None:
    """Run the block in a real nginx in front of a slow stream; tokens must arrive spread out."""
    import httpx

    upstream_app = Starlette(routes=[Route("/chat/stream", _slow_events, methods=["POST"])])
    with BackgroundServer(upstream_app) as upstream:
        try:
            proxy_cm = run_nginx(upstream.url, block)
            proxy = proxy_cm.__enter__()
        except RuntimeError as exc:
            raise NotYet(f"nginx refused the config: {exc}") from None
        try:
            started = time.perf_counter()
            arrivals: list[float] = []
            raw = ""
            with httpx.stream("POST", f"{proxy.url}/chat/stream", json={}, timeout=10) as resp:
                if resp.status_code != 200:
                    raise NotYet(f"a POST to /chat/stream through nginx got {resp.status_code}")
                for chunk in resp.iter_text():
                    arrivals.append(time.perf_counter() - started)
                    raw += chunk
        finally:
            proxy_cm.__exit__(None, None, None)
    events = [json.loads(e.data) for e in parse_sse(raw)]
    if not events or events[-1] != {"token": "", "done": True}:
        raise NotYet("the stream did not arrive whole through nginx")
    if arrivals[0] > 0.6 * arrivals[-1]:
        raise NotYet("through nginx, the first token arrived only with the last: still buffered")


def check_streaming_location(streaming_location: Callable[[], str]) -> None:
    block = streaming_location()
    if not isinstance(block, str):
        raise NotYet(f"return the block as a str, not {type(block).__name__}")
    _check_statically(block)
    # Where nginx is installed, the block also has to work for real.
    if nginx_available():
        _check_with_nginx(block)


# --- stop_server_side -------------------------------------------------------------------------


class _FakeStream:
    """Quacks like AsyncOpenAI's AsyncStream: chunks, then (optionally) a long silence."""

    def __init__(self, tokens: list[str], *, then_hang: bool = False) -> None:
        self._chunks = [_chunk(t) for t in tokens]
        if not then_hang:
            self._chunks.append(_chunk(None, finish="stop"))
        self._hang = then_hang
        self.closed = False

    def __aiter__(self) -> _FakeStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        if self._chunks:
            await asyncio.sleep(0)
            return self._chunks.pop(0)
        if self._hang:
            await asyncio.sleep(3600)  # the model "thinks"; only a cancellation ends this
        raise StopAsyncIteration

    async def close(self) -> None:
        self.closed = True


def _chunk(content: str | None, finish: str | None = None) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-check",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
        }
    )


async def _generator(relay_tokens: Callable[[Any], Any], stream: _FakeStream) -> Any:
    produced = relay_tokens(stream)
    if inspect.isawaitable(produced) and not hasattr(produced, "__aiter__"):
        await produced  # a stub raises NotImplementedError here
        raise NotYet("relay_tokens must be an async generator (use `yield`)")
    if not hasattr(produced, "__aiter__"):
        raise NotYet("relay_tokens must be an async generator (use `yield`)")
    return produced


async def check_stop_server_side(relay_tokens: Callable[[Any], Any]) -> None:
    # 1. A whole reply: the events in the route's shape, and the stream closed at the end.
    stream = _FakeStream(["Hel", "lo", "!"])
    events = [item async for item in await _generator(relay_tokens, stream)]
    parsed = [json.loads(e.data) for e in parse_sse("".join(events))]
    expected = [
        {"token": "Hel", "done": False},
        {"token": "lo", "done": False},
        {"token": "!", "done": False},
        {"token": "", "done": True},
    ]
    if parsed != expected:
        raise NotYet(f"expected the events {expected}, got {parsed}")
    if not stream.closed:
        raise NotYet("after a complete reply the provider stream was not closed")

    # 2. Stop pressed mid-reply: the server cancels the generator while it awaits the provider.
    stream = _FakeStream(["Hel", "lo"], then_hang=True)
    generator = await _generator(relay_tokens, stream)
    received: list[str] = []

    async def consume() -> None:
        async for item in generator:
            received.append(item)

    task = asyncio.ensure_future(consume())
    for _ in range(200):
        if len(received) >= 2:
            break
        await asyncio.sleep(0.005)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if len(received) < 2:
        raise NotYet("the tokens were not yielded as they came")
    if not stream.closed:
        raise NotYet(
            "when the client disconnects (CancelledError inside the generator), the provider "
            "stream stayed open: close it in a `finally:` block"
        )

    # 3. Closed from outside between events (GeneratorExit), as a server may do.
    stream = _FakeStream(["a", "b", "c"], then_hang=True)
    generator = await _generator(relay_tokens, stream)
    await generator.__anext__()
    await generator.aclose()
    if not stream.closed:
        raise NotYet("closing the generator early left the provider stream open")
