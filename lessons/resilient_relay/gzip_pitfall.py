"""Wrong: a gzip middleware that never flushes holds compressed SSE back until the reply ends.

Starlette 1.10's own GZipMiddleware is safe for SSE twice over: `text/event-stream` is in its
default `exclude_content_types`, and even when compressing a stream it flushes the compressor
after every chunk (Z_SYNC_FLUSH). A hand-written gzip middleware (or an older library) that only
calls `compress()` keeps small chunks inside zlib's window: the client sees nothing until about
32 KB have piled up or the reply ends. Proxies and CDNs that compress can do the same, which is
one reason every stream sends `Cache-Control: no-cache` and `X-Accel-Buffering: no`
(docs/wire-contract.md).
"""

from __future__ import annotations

import zlib

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lessons.resilient_relay.relay import RelaySettings, create_app


class NaiveGZipMiddleware:
    """WRONG for streams: compresses every response and flushes only at the end."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

        async def send_compressed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Encoding"] = "gzip"
                headers.append("Vary", "Accept-Encoding")
                if "content-length" in headers:
                    del headers["content-length"]
            elif message["type"] == "http.response.body":
                body = compressor.compress(message.get("body", b""))
                if not message.get("more_body", False):
                    body += compressor.flush()
                # WRONG: no compressor.flush(zlib.Z_SYNC_FLUSH) per chunk.
                message = {**message, "body": body}
            await send(message)

        await self.app(scope, receive, send_compressed)


def create_pitfall_app(settings: RelaySettings | None = None) -> FastAPI:
    app = create_app(settings)
    app.add_middleware(NaiveGZipMiddleware)
    return app


app = create_pitfall_app()
