"""The relays the lesson relays are measured against: the simplest ones people write.

None of these is lesson code. Each is what a tutorial or a framework's docs would show, with no
guarantee of the core (no deadlines, no keep-alive, no end-marker check, nothing closes the
upstream on purpose): the point is what the guarantees cost next to them. All relay
`POST /chat/stream` with `{"message"}` to the provider's Chat Completions endpoint.

Each sends the provider the request the lesson relays send (a system prompt, the message, usage
asked for, the core's default token cap), so that the comparison is of relays, not of requests:
the SDK prepares every message of a request with type introspection (about 80 us each, measured)
and the reply's length sets how far a request's fixed costs are spread.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from openai import AsyncOpenAI
from pydantic import BaseModel

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Body(BaseModel):
    message: str


SYSTEM_PROMPT = "You are a helpful assistant."  # the core's default (RelaySettings)
MAX_TOKENS = 500  # the core's default_max_tokens


def _request(body: Body) -> dict[str, Any]:
    """The Chat Completions request every relay here sends, SDK or raw."""
    return {
        "model": os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": body.message},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": MAX_TOKENS,
    }


@asynccontextmanager
async def _openai(app: FastAPI) -> AsyncIterator[None]:
    app.state.openai = AsyncOpenAI()
    yield
    await app.state.openai.close()


def plain_sdk() -> FastAPI:
    """AsyncOpenAI and StreamingResponse over an async generator: the tutorial relay."""
    app = FastAPI(lifespan=_openai)

    @app.post("/chat/stream")
    async def chat(body: Body, request: Request) -> StreamingResponse:
        stream = await request.app.state.openai.chat.completions.create(**_request(body))

        async def events() -> AsyncIterator[bytes]:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield (
                        b"data: "
                        + orjson.dumps({"token": chunk.choices[0].delta.content})
                        + b"\n\n"
                    )
            yield b'data: {"done":true}\n\n'

        return StreamingResponse(events(), media_type="text/event-stream", headers=HEADERS)

    return app


def sse_starlette_relay() -> FastAPI:
    """The same relay on sse-starlette's EventSourceResponse (ping task, disconnect listener)."""
    from sse_starlette import EventSourceResponse as StarletteSSE

    app = FastAPI(lifespan=_openai)

    @app.post("/chat/stream")
    async def chat(body: Body, request: Request) -> Any:
        stream = await request.app.state.openai.chat.completions.create(**_request(body))

        async def events() -> AsyncIterator[dict[str, str]]:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield {"data": orjson.dumps({"token": chunk.choices[0].delta.content}).decode()}
            yield {"data": '{"done":true}'}

        return StarletteSSE(events())

    return app


def fastapi_native() -> FastAPI:
    """The same relay with FastAPI's native EventSourceResponse and a generator endpoint."""
    app = FastAPI(lifespan=_openai)

    @app.post("/chat/stream", response_class=EventSourceResponse)
    async def chat(body: Body, request: Request) -> AsyncIterable[ServerSentEvent]:
        stream = await request.app.state.openai.chat.completions.create(**_request(body))
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield ServerSentEvent(data={"token": chunk.choices[0].delta.content})
        yield ServerSentEvent(data={"done": True})

    return app


@asynccontextmanager
async def _http(app: FastAPI) -> AsyncIterator[None]:
    base = os.environ["OPENAI_BASE_URL"].rstrip("/")
    app.state.http = httpx.AsyncClient(
        base_url=base,
        headers={"Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}"},
        timeout=60,
        limits=httpx.Limits(max_connections=1_000, max_keepalive_connections=100),
    )
    yield
    await app.state.http.aclose()


async def _open_raw(app: FastAPI, body: Body) -> httpx.Response:
    request = app.state.http.build_request("POST", "/chat/completions", json=_request(body))
    return await app.state.http.send(request, stream=True)


def raw_forward() -> FastAPI:
    """The provider's bytes passed on unchanged: no parsing at all (the limit, not a peer)."""
    app = FastAPI(lifespan=_http)

    @app.post("/chat/stream")
    async def chat(body: Body, request: Request) -> StreamingResponse:
        response = await _open_raw(request.app, body)

        async def passthrough() -> AsyncIterator[bytes]:
            try:
                async for data in response.aiter_raw():
                    yield data
            finally:
                await response.aclose()

        return StreamingResponse(passthrough(), media_type="text/event-stream", headers=HEADERS)

    return app


@asynccontextmanager
async def _aiohttp(app: FastAPI) -> AsyncIterator[None]:
    import aiohttp

    app.state.session = aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}"},
        connector=aiohttp.TCPConnector(limit=1_000),
    )
    yield
    await app.state.session.close()


def raw_forward_aiohttp() -> FastAPI:
    """raw_forward with aiohttp as the client (the fast path's): the limit for that client."""
    app = FastAPI(lifespan=_aiohttp)
    url = os.environ["OPENAI_BASE_URL"].rstrip("/") + "/chat/completions"

    @app.post("/chat/stream")
    async def chat(body: Body, request: Request) -> StreamingResponse:
        response = await request.app.state.session.post(url, json=_request(body))

        async def passthrough() -> AsyncIterator[bytes]:
            try:
                async for data in response.content.iter_any():
                    yield data
            finally:
                response.close()

        return StreamingResponse(passthrough(), media_type="text/event-stream", headers=HEADERS)

    return app


def raw_parse() -> FastAPI:
    """The provider's events parsed (orjson) and re-emitted as token events, one per event."""
    app = FastAPI(lifespan=_http)

    @app.post("/chat/stream")
    async def chat(body: Body, request: Request) -> StreamingResponse:
        response = await _open_raw(request.app, body)

        async def events() -> AsyncIterator[bytes]:
            pending = b""
            try:
                async for data in response.aiter_raw():
                    *lines, pending = (pending + data).split(b"\n")
                    for line in lines:
                        if line.startswith(b"data: ") and line != b"data: [DONE]":
                            chunk = orjson.loads(line[6:])
                            choices = chunk.get("choices")
                            if choices and choices[0]["delta"].get("content"):
                                text = choices[0]["delta"]["content"]
                                yield b"data: " + orjson.dumps({"token": text}) + b"\n\n"
                yield b'data: {"done":true}\n\n'
            finally:
                await response.aclose()

        return StreamingResponse(events(), media_type="text/event-stream", headers=HEADERS)

    return app


PEERS = {
    "raw-forward": raw_forward,
    "raw-forward-aiohttp": raw_forward_aiohttp,
    "raw-parse": raw_parse,
    "plain-sdk": plain_sdk,
    "sse-starlette": sse_starlette_relay,
    "fastapi-native": fastapi_native,
}
