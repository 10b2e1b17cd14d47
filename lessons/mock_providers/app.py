"""The mock's raw ASGI app: routing, paced streaming, fault injection and disconnect detection."""

import asyncio
import logging
import time
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from lessons.mock_providers.anthropic_messages import Messages
from lessons.mock_providers.observed import Outcome
from lessons.mock_providers.openai_chat import ChatCompletions
from lessons.mock_providers.openai_responses import Responses
from lessons.mock_providers.wire import Dialect, ErrorResponse

if TYPE_CHECKING:
    from lessons.mock_providers.control import Admission, MockProviders

Scope = dict[str, Any]
Receive = Any
Send = Any

ROUTES: dict[str, Dialect] = {
    "/v1/chat/completions": ChatCompletions(),
    "/v1/responses": Responses(),
    "/v1/messages": Messages(),
}

# At zero delay events are batched into one send of about this size: one write per event
# would make the server, not the lesson's relay, the bottleneck.
_FLUSH_BYTES = 16_384


class DropConnection(Exception):
    """Raised after a partial response so that the server cuts the connection, as a drop fault."""


class _HideDrops(logging.Filter):
    """Keeps uvicorn from logging a scripted drop as an application error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DropConnection))


def _hide_drops_from_server_log() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _HideDrops) for existing in logger.filters):
        logger.addFilter(_HideDrops())


class MockApp:
    """The ASGI application behind `MockProviders.app`."""

    def __init__(self, mock: "MockProviders") -> None:
        self._mock = mock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.monotonic()
        raw_body = await _read_body(receive)
        path = scope["path"].rstrip("/")
        dialect = ROUTES.get(path)
        if dialect is None or scope["method"] != "POST":
            # Anthropic clients get Anthropic's 404 shape, everything else OpenAI's.
            shape = (
                ROUTES["/v1/messages"]
                if path.startswith("/v1/messages")
                else ROUTES["/v1/chat/completions"]
            )
            request_id = shape.request_id(self._mock._ids())
            await _send_whole(send, shape.not_found(scope["method"], scope["path"], request_id))
            return
        admission = self._mock._admit(dialect, raw_body, scope["headers"], started)
        if admission.response is not None:
            await _send_whole(send, admission.response)
            return
        await self._serve(admission, receive, send)

    async def _serve(self, admission: "Admission", receive: Receive, send: Send) -> None:
        """Answer while watching for the client leaving; stop generating as soon as it does."""
        assert admission.ctx is not None
        answer = self._stream if admission.ctx.conversation.stream else self._whole
        work = asyncio.ensure_future(answer(admission, send))
        watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            done, _ = await asyncio.wait((work, watcher), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The server is cancelling this request: leave no task behind.
            work.cancel()
            watcher.cancel()
            raise
        watcher.cancel()
        if work in done:
            # Re-raises DropConnection, which makes the server cut the connection.
            work.result()
            return
        gone_at = time.monotonic()
        work.cancel()
        with suppress(asyncio.CancelledError):
            await work
        self._mock._finish(admission.record, "client_disconnected", gone_at, disconnected=True)

    async def _stream(self, admission: "Admission", send: Send) -> None:
        mock, record, fault = self._mock, admission.record, admission.fault
        ctx, dialect = admission.ctx, admission.dialect
        assert ctx is not None
        # Token n is due at a fixed offset from the request's arrival, so the pace cannot drift;
        # a stall pushes the whole remaining schedule back.
        schedule_start = record.started_at + admission.ttft
        # A mid-stream fault strikes where token number `after_tokens` (from 0) would go.
        strike_at = None if fault is None or fault.kind == "http_error" else fault.after_tokens
        if fault is not None and fault.kind == "stall" and fault.before_headers:
            await asyncio.sleep(fault.seconds)
            schedule_start += fault.seconds
            strike_at = None
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": dialect.success_headers(ctx, stream=True),
            }
        )
        buffer = bytearray()
        pending = 0
        sent = 0
        # Events without a token wait here for the next token. When the reply runs out of
        # tokens before a fault's position, the fault still strikes, before the closing events.
        held: list[bytes] = []
        events_out = 0

        async def flush(finish: Outcome | None = None) -> None:
            """Send what is buffered; `finish` ends the response with that outcome.

            Observations are updated before the bytes go out, so a client that has read the
            end of the stream always finds the final record.
            """
            nonlocal buffer, pending, sent
            now = time.monotonic()
            if pending:
                mock._progress(record, pending, now)
                sent += pending
                pending = 0
            if finish is not None:
                mock._finish(record, finish, now)
            body, buffer = bytes(buffer), bytearray()
            await send({"type": "http.response.body", "body": body, "more_body": finish is None})

        async def strike() -> bool:
            """Apply the mid-stream fault; True when it ended the stream."""
            nonlocal schedule_start
            assert fault is not None
            if fault.kind == "error_event":
                buffer.extend(dialect.stream_error(ctx, fault.error, events_out))
                await flush(finish="fault")
                return True
            if fault.kind == "end_early":
                await flush(finish="fault")
                return True
            await flush()
            if fault.kind == "drop":
                mock._finish(record, "fault", time.monotonic())
                _hide_drops_from_server_log()
                raise DropConnection(fault.describe())
            await asyncio.sleep(fault.seconds)
            schedule_start += fault.seconds
            return False

        # Events are encoded one at a time: the first byte never waits for the whole reply.
        for data, tokens in dialect.stream_events(ctx):
            if not tokens:
                held.append(data)
                continue
            for event in held:
                buffer += event
            events_out += len(held)
            held.clear()
            if strike_at == sent + pending:
                strike_at = None
                if await strike():
                    return
            delay = schedule_start + (sent + pending) * admission.interval - time.monotonic()
            if delay > 0:
                await flush()
                await asyncio.sleep(delay)
            elif len(buffer) >= _FLUSH_BYTES:
                await flush()
                # Let the disconnect watcher and other streams run between batches.
                await asyncio.sleep(0)
            buffer += data
            pending += tokens
            events_out += 1
        if strike_at is not None and await strike():
            return
        for event in held:
            buffer += event
        await flush(finish="completed")

    async def _whole(self, admission: "Admission", send: Send) -> None:
        """A non-streaming answer: it arrives all at once, when the last token would have."""
        mock, record, fault = self._mock, admission.record, admission.fault
        ctx, dialect = admission.ctx, admission.dialect
        assert ctx is not None
        ready_at = record.started_at + admission.ttft
        ready_at += max(record.tokens_planned - 1, 0) * admission.interval
        if fault is not None and fault.kind == "stall":
            ready_at += fault.seconds
        await asyncio.sleep(max(ready_at - time.monotonic(), 0))
        if fault is not None and fault.kind == "error_event":
            status = dialect.overload_status(fault.error)
            error = dialect.http_error(
                status,
                ctx.request_id,
                model=ctx.conversation.model,
                api_key=ctx.api_key,
                retry_after=None,
                should_retry=False,
            )
            mock._finish(record, "fault", time.monotonic(), status=status)
            await _send_whole(send, error)
            return
        body = dialect.body(ctx)
        headers = dialect.success_headers(ctx, stream=False)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if fault is not None and fault.kind in ("drop", "end_early"):
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            mock._finish(record, "fault", time.monotonic())
            _hide_drops_from_server_log()
            raise DropConnection(fault.describe())
        now = time.monotonic()
        mock._progress(record, record.tokens_planned, now)
        mock._finish(record, "completed", now)
        await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _wait_for_disconnect(receive: Receive) -> None:
    # Once the body is read, the server's next message is http.disconnect, sent the moment
    # the connection is lost (or the response is complete, which the caller tells apart).
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_whole(send: Send, response: ErrorResponse) -> None:
    headers = [*response.headers, (b"content-length", str(len(response.body)).encode())]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
