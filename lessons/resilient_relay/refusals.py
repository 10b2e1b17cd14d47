"""Errors that come from the relay itself, not the provider, in the contract's JSON shape."""

from __future__ import annotations

from enum import StrEnum

from fastapi.responses import JSONResponse


class RefusalCode(StrEnum):
    UNAUTHORIZED = "unauthorized"
    TOO_MANY_STREAMS = "too_many_streams"
    CLIENT_RATE_LIMITED = "client_rate_limited"
    SHUTTING_DOWN = "server_shutting_down"


# Fixed texts, like the provider codes in lessons.relay_core.errors.
REFUSAL_MESSAGES: dict[RefusalCode, str] = {
    RefusalCode.UNAUTHORIZED: "Send a valid bearer token in the Authorization header.",
    RefusalCode.TOO_MANY_STREAMS: "Too many streams open for this client. Close one and retry.",
    RefusalCode.CLIENT_RATE_LIMITED: "Too many requests from this client. Try again later.",
    RefusalCode.SHUTTING_DOWN: "The server is restarting. Retry the request.",
}

REFUSAL_STATUSES: dict[RefusalCode, int] = {
    RefusalCode.UNAUTHORIZED: 401,
    RefusalCode.TOO_MANY_STREAMS: 429,
    RefusalCode.CLIENT_RATE_LIMITED: 429,
    RefusalCode.SHUTTING_DOWN: 503,
}


def refusal_response(
    code: RefusalCode, request_id: str, *, retry_after: int | None = None
) -> JSONResponse:
    """A refusal before any provider call: status, `Retry-After` when useful, the contract body."""
    headers = {"X-Request-ID": request_id}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if code is RefusalCode.UNAUTHORIZED:
        headers["WWW-Authenticate"] = "Bearer"
    body = {"error": {"code": code, "message": REFUSAL_MESSAGES[code], "request_id": request_id}}
    return JSONResponse(body, status_code=REFUSAL_STATUSES[code], headers=headers)
