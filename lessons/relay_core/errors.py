"""The error contract: a failure becomes a safe HTTP error or one terminal event.

Before the response has started, the relay can still choose its status, so a failure becomes an
HTTP error with a JSON body: `{"error": {"code", "message", "request_id"}}`. After the first byte,
the status is sent and cannot change, so a failure becomes one terminal error event in the
route's own shape. Either way the client gets a fixed message per code and the request id; the
details (exception text, provider bodies and ids) go only to the server log, under that id.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from enum import StrEnum

import aiohttp
import anthropic
import httpx
import httpx2
import openai
from fastapi.responses import JSONResponse

from lessons.relay_core.logs import log_event, logger


class ErrorCode(StrEnum):
    # The provider's failures.
    RATE_LIMITED = "rate_limited"
    PROVIDER_OVERLOADED = "provider_overloaded"
    PROVIDER_ERROR = "provider_error"
    PROVIDER_AUTH = "provider_auth_failed"
    PROVIDER_REJECTED = "provider_rejected_request"
    PROVIDER_UNREACHABLE = "provider_unreachable"
    PROVIDER_TIMEOUT = "provider_timeout"
    STREAM_INTERRUPTED = "stream_interrupted"
    # The relay's own refusals and endings.
    INVALID_REQUEST = "invalid_request"
    INVALID_LAST_EVENT_ID = "invalid_last_event_id"
    REQUEST_TOO_LARGE = "request_too_large"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    TOO_MANY_STREAMS = "too_many_streams"
    CLIENT_RATE_LIMITED = "client_rate_limited"
    TOKEN_BUDGET_EXHAUSTED = "token_budget_exhausted"
    SERVER_BUSY = "server_busy"
    SHUTTING_DOWN = "server_shutting_down"
    STOPPED = "stopped"
    INTERNAL = "internal_error"


# The only texts a client ever sees. Fixed per code, so nothing internal can leak through them.
MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.RATE_LIMITED: "The model provider is rate limiting requests. Try again later.",
    ErrorCode.PROVIDER_OVERLOADED: "The model provider is overloaded. Try again shortly.",
    ErrorCode.PROVIDER_ERROR: "The model provider failed to produce a reply.",
    ErrorCode.PROVIDER_AUTH: "The server could not authenticate with the model provider.",
    ErrorCode.PROVIDER_REJECTED: "The model provider rejected the request.",
    ErrorCode.PROVIDER_UNREACHABLE: "The model provider could not be reached.",
    ErrorCode.PROVIDER_TIMEOUT: "The model provider did not answer in time.",
    ErrorCode.STREAM_INTERRUPTED: "The reply from the model provider was cut short.",
    ErrorCode.INVALID_REQUEST: "The request is not valid.",
    ErrorCode.INVALID_LAST_EVENT_ID: "Last-Event-ID is not an id of this stream.",
    ErrorCode.REQUEST_TOO_LARGE: "The request body is too large.",
    ErrorCode.UNAUTHORIZED: "Send a valid bearer token in the Authorization header.",
    ErrorCode.NOT_FOUND: "No such reply, or it has expired.",
    ErrorCode.TOO_MANY_STREAMS: "Too many streams open for this client. Close one and retry.",
    ErrorCode.CLIENT_RATE_LIMITED: "Too many requests from this client. Try again later.",
    ErrorCode.TOKEN_BUDGET_EXHAUSTED: "This client has used its token budget. Try again later.",
    ErrorCode.SERVER_BUSY: "The server has too many replies in progress. Try again shortly.",
    ErrorCode.SHUTTING_DOWN: "The server is restarting. Retry the request.",
    ErrorCode.STOPPED: "The reply was stopped before it was complete.",
    ErrorCode.INTERNAL: "The server failed while streaming the reply.",
}

# HTTP status for failures known before the stream starts. 401/403 from the provider mean the
# *server's* key is wrong, which is not the client's fault: a gateway error, not a 401.
STATUSES: dict[ErrorCode, int] = {
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.PROVIDER_OVERLOADED: 503,
    ErrorCode.PROVIDER_ERROR: 502,
    ErrorCode.PROVIDER_AUTH: 502,
    ErrorCode.PROVIDER_REJECTED: 502,
    ErrorCode.PROVIDER_UNREACHABLE: 503,
    ErrorCode.PROVIDER_TIMEOUT: 504,
    ErrorCode.STREAM_INTERRUPTED: 502,
    ErrorCode.INVALID_REQUEST: 422,
    ErrorCode.INVALID_LAST_EVENT_ID: 400,
    ErrorCode.REQUEST_TOO_LARGE: 413,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.TOO_MANY_STREAMS: 429,
    ErrorCode.CLIENT_RATE_LIMITED: 429,
    ErrorCode.TOKEN_BUDGET_EXHAUSTED: 429,
    ErrorCode.SERVER_BUSY: 503,
    ErrorCode.SHUTTING_DOWN: 503,
    ErrorCode.STOPPED: 409,
    ErrorCode.INTERNAL: 500,
}

_STATUS_ERRORS = (openai.APIStatusError, anthropic.APIStatusError)
# openai 3.x and anthropic 2.x run on httpx2; an error raised while reading a stream can reach
# the caller as the transport's own exception rather than the SDK's wrapper (anthropic does this).
_TIMEOUTS = (
    openai.APITimeoutError,
    anthropic.APITimeoutError,
    TimeoutError,
    httpx.TimeoutException,
    httpx2.TimeoutException,
)  # aiohttp's timeouts (the fast path's client) are TimeoutError
_CONNECTION_ERRORS = (
    openai.APIConnectionError,
    anthropic.APIConnectionError,
    httpx.TransportError,
    httpx2.TransportError,
    # The fast path's client: refused or lost connections, and a body cut off mid-chunk.
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    ConnectionError,
)


@dataclass(frozen=True, slots=True)
class RelayError:
    """What the client is told about a failure: a code, its fixed message, and its status."""

    code: ErrorCode
    request_id: str
    retry_after: str | None = None

    @property
    def message(self) -> str:
        return MESSAGES[self.code]

    @property
    def status(self) -> int:
        return STATUSES[self.code]

    def body(self) -> dict[str, dict[str, str]]:
        return {
            "error": {"code": self.code, "message": self.message, "request_id": self.request_id}
        }


class StreamFailed(Exception):
    """A stream went wrong without an SDK exception (for example `response.failed`)."""

    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class ProviderHTTPError(Exception):
    """A provider's HTTP error met without an SDK (the fast path reads the wire itself)."""

    def __init__(self, status_code: int, headers: dict[str, str], body: object) -> None:
        super().__init__(f"HTTP {status_code}: {str(body)[:300]}")
        self.status_code = status_code
        self.headers = headers
        self.body = body


class IncompleteStream(StreamFailed):
    """The provider's stream ended cleanly but without its end marker: the reply is cut short."""

    def __init__(self, detail: str = "the provider stream ended without its end marker") -> None:
        super().__init__(ErrorCode.STREAM_INTERRUPTED, detail)


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


def _provider_error_type(exc: BaseException) -> str | None:
    """The provider's own error type, e.g. "overloaded_error", from either SDK's body."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            kind = inner.get("type") or inner.get("code")
            return str(kind) if kind else None
    return None


def _log(exc: BaseException, error: RelayError, when: str) -> None:
    # The detail is rendered to text now: a record holding the exception itself would keep its
    # traceback, and with it the whole failed stream, alive in any handler that keeps records.
    log_event(
        logging.WARNING,
        f"stream_failed_{when}_start",
        request_id=error.request_id,
        code=error.code,
        exception=type(exc).__name__,
        provider_type=_provider_error_type(exc),
        provider_request_id=getattr(exc, "request_id", None),
        detail=str(exc),
    )
    if error.code is ErrorCode.INTERNAL:
        # Our own bug, not the provider's: the traceback is what a maintainer needs.
        logger.error("internal error, request_id=%s", error.request_id, exc_info=exc)


def classify_before_stream(exc: BaseException, request_id: str) -> RelayError:
    """Map a failure of the call that opens the provider's stream to the HTTP error contract."""
    retry_after: str | None = None
    if isinstance(exc, StreamFailed):
        code = exc.code
    elif isinstance(exc, _TIMEOUTS):
        code = ErrorCode.PROVIDER_TIMEOUT
    elif isinstance(exc, _CONNECTION_ERRORS):
        code = ErrorCode.PROVIDER_UNREACHABLE
    elif isinstance(exc, (*_STATUS_ERRORS, ProviderHTTPError)):
        status = exc.status_code
        if status == 429:
            code = ErrorCode.RATE_LIMITED
            headers = exc.headers if isinstance(exc, ProviderHTTPError) else exc.response.headers
            retry_after = headers.get("retry-after")
        elif status in (401, 403):
            code = ErrorCode.PROVIDER_AUTH
        elif status in (503, 529) or _provider_error_type(exc) == "overloaded_error":
            code = ErrorCode.PROVIDER_OVERLOADED
        elif status >= 500:
            code = ErrorCode.PROVIDER_ERROR
        else:
            code = ErrorCode.PROVIDER_REJECTED
    else:
        code = ErrorCode.INTERNAL
    if retry_after is not None and not retry_after.strip().isdigit():
        # Only whole seconds are passed on: an HTTP date or a header with odd bytes is not.
        retry_after = None
    error = RelayError(code, request_id, retry_after)
    _log(exc, error, "before")
    return error


def classify_during_stream(exc: BaseException, request_id: str) -> RelayError:
    """Map a failure after the first byte to the code of the one terminal error event."""
    if isinstance(exc, StreamFailed):
        code = exc.code
    elif isinstance(exc, _TIMEOUTS):
        code = ErrorCode.PROVIDER_TIMEOUT
    elif isinstance(exc, _CONNECTION_ERRORS):
        code = ErrorCode.STREAM_INTERRUPTED
    elif _provider_error_type(exc) == "overloaded_error":
        code = ErrorCode.PROVIDER_OVERLOADED
    elif _provider_error_type(exc) in {"rate_limit_error", "rate_limit_exceeded"}:
        code = ErrorCode.RATE_LIMITED
    elif isinstance(exc, openai.APIError | anthropic.APIError):
        code = ErrorCode.PROVIDER_ERROR
    else:
        code = ErrorCode.INTERNAL
    error = RelayError(code, request_id)
    _log(exc, error, "after")
    return error


def error_response(error: RelayError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The HTTP answer for a failure before the stream: status, JSON body, no stream."""
    sent = {"X-Request-ID": error.request_id, **(headers or {})}
    if error.retry_after is not None:
        sent["Retry-After"] = error.retry_after
    if error.code is ErrorCode.UNAUTHORIZED:
        sent["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error.body(), status_code=error.status, headers=sent)
