"""Wrong: a BaseHTTPMiddleware that reads the response body buffers the stream, never cancels.

In Starlette 1.10 a BaseHTTPMiddleware that just returns `call_next`'s response is fine: chunks
pass through and a client disconnect still cancels the generator (notebook 05 measures both).
The trap is the common logging middleware that consumes `response.body_iterator` to record the
body: the client gets nothing until the reply is complete, and a client that leaves is never
noticed, so the upstream runs to the end.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from lessons.resilient_relay.relay import RelaySettings, create_app


class PassThroughMiddleware(BaseHTTPMiddleware):
    """Harmless in Starlette 1.10: returns the streaming response as it is."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["X-Served-By"] = "relay"
        return response


class BodyLoggingMiddleware(BaseHTTPMiddleware):
    """WRONG for streams: reads the whole body before answering."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        body = b""
        async for chunk in response.body_iterator:  # type: ignore[attr-defined]
            body += chunk if isinstance(chunk, bytes) else chunk.encode()
        return Response(body, status_code=response.status_code, headers=dict(response.headers))


def create_pitfall_app(
    middleware: type[BaseHTTPMiddleware], settings: RelaySettings | None = None
) -> FastAPI:
    app = create_app(settings)
    app.add_middleware(middleware)
    return app


passthrough_app = create_pitfall_app(PassThroughMiddleware)
app = create_pitfall_app(BodyLoggingMiddleware)
