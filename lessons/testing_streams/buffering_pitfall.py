"""Wrong: an audit-log middleware that buffers the whole response, so nothing streams.

The events and their order are exactly right, so a test that only compares the final text
passes; only a test of *when* the first event arrives catches it.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lessons.testing_streams.chat_app import create_app

logger = logging.getLogger("lessons.audit")


class AuditLogMiddleware:
    """Logs every response body, and to do so holds every body chunk until the last one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []
        body = bytearray()

        async def buffering_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                held.append(message)
                return
            if message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if message.get("more_body", False):
                    return  # The bug: the chunk waits here until the response is complete.
                logger.info("response %s: %d bytes", scope["path"], len(body))
                for start in held:
                    await send(start)
                await send({"type": "http.response.body", "body": bytes(body)})
                return
            await send(message)

        await self.app(scope, receive, buffering_send)


app = create_app()
app.add_middleware(AuditLogMiddleware)
