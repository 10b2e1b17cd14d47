"""Who may call a relay, and how much: client tokens, a body limit, origins, budgets.

A relay spends the server's provider key on behalf of whoever calls it, so every lesson app
authenticates its clients when `RELAY_CLIENT_TOKENS` is set ("token:client" pairs, comma
separated). When it is not set, an app meant to be deployed refuses every request (fail
closed), and a teaching app serves openly, with budgets off, and says so in the server log.

Two checks must happen before FastAPI reads the body, so they live in ASGI middleware
(`RelayGuard`), not in dependencies (FastAPI reads and parses the body before it solves a
route's dependencies): the bearer token, and the body limit (413 as soon as the declared
length, or the bytes read so far, pass it). FastAPI's own `max_body_size` would answer outside
the error contract (plain text or `{"detail": ...}`) and before authentication. The rest
(budgets, the `max_tokens` cap, the system prompt policy) are dependencies (`app.py`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lessons.relay_core.budgets import BudgetSettings
from lessons.relay_core.errors import ErrorCode, RelayError, error_response, new_request_id
from lessons.relay_core.grants import GRANT_COOKIE, GrantSigner
from lessons.relay_core.logs import log_event

TOKENS_ENV = "RELAY_CLIENT_TOKENS"
ORIGINS_ENV = "RELAY_ALLOWED_ORIGINS"
MIN_TOKEN_CHARS = 16
# RFC 6750's b64token: what a bearer token may contain. Nothing else is even compared.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_CLIENT_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")

Mode = Literal["authenticated", "open", "closed"]
ANONYMOUS = "anonymous"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_client_tokens(raw: str) -> dict[str, str]:
    """`"token1:client-a,token2:client-b"` -> {token: client}. Refuses what is unsafe to run with:
    a pair without a colon, an empty or short token, a token with characters outside RFC 6750.
    The messages name the pair's position, never the token."""
    tokens: dict[str, str] = {}
    for position, pair in enumerate(raw.split(","), start=1):
        if not pair.strip():
            continue
        token, sep, client = pair.strip().partition(":")
        if not sep:
            raise ValueError(f"{TOKENS_ENV}: pair {position} has no ':' between token and client")
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"{TOKENS_ENV}: the token of pair {position} is shorter than {MIN_TOKEN_CHARS} "
                "characters (an empty variable in the shell makes it empty)"
            )
        if not _TOKEN.fullmatch(token):
            raise ValueError(f"{TOKENS_ENV}: the token of pair {position} has invalid characters")
        if not _CLIENT_ID.fullmatch(client):
            raise ValueError(f"{TOKENS_ENV}: the client id of pair {position} is not a short name")
        tokens[token] = client
    return tokens


@dataclass(frozen=True)
class ProtectionSettings:
    """Client tokens, origins and budgets for one app."""

    tokens: dict[str, str] = field(default_factory=dict)
    # A deployed app with no tokens refuses everyone; a teaching app serves everyone.
    deployed: bool = False
    allowed_origins: tuple[str, ...] = ()
    budgets: BudgetSettings = field(default_factory=BudgetSettings)

    def __post_init__(self) -> None:
        # Tokens given in code are held to the same rules as tokens read from the environment.
        parse_client_tokens(",".join(f"{t}:{c}" for t, c in self.tokens.items()))

    @classmethod
    def from_env(
        cls, *, deployed: bool, budgets: BudgetSettings | None = None
    ) -> ProtectionSettings:
        """Read RELAY_CLIENT_TOKENS and RELAY_ALLOWED_ORIGINS ("https://a.example,https://b")."""
        origins = os.environ.get(ORIGINS_ENV, "")
        return cls(
            tokens=parse_client_tokens(os.environ.get(TOKENS_ENV, "")),
            deployed=deployed,
            allowed_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            budgets=budgets or BudgetSettings(),
        )

    @property
    def mode(self) -> Mode:
        if self.tokens:
            return "authenticated"
        return "closed" if self.deployed else "open"

    @property
    def budgets_on(self) -> bool:
        return self.mode == "authenticated"

    def describe(self) -> str:
        if self.mode == "authenticated":
            return f"clients authenticate with bearer tokens ({len(self.tokens)} configured)"
        if self.mode == "closed":
            return f"{TOKENS_ENV} is not set: every request is refused (fail closed)"
        return (
            f"{TOKENS_ENV} is not set: serving without authentication or budgets (a teaching "
            "app; set it before exposing this server)"
        )


class ClientTokens:
    """Bearer token -> client id, compared in constant time."""

    def __init__(self, tokens: dict[str, str]) -> None:
        # Looked up by the token's hash: the time a lookup takes depends on the hash, which a
        # caller cannot steer towards a real token, not on how much of a token was right.
        self._by_digest = {_digest(token): client for token, client in tokens.items()}

    def client_for(self, authorization: str | None) -> str | None:
        """The client id for `Authorization: Bearer <token>`, or None."""
        scheme, sep, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not sep or not _TOKEN.fullmatch(presented):
            return None
        digest = _digest(presented)
        for known, client in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return client
        return None


class RelayGuard:
    """ASGI middleware in front of every lesson app: request id, client token, body limit.

    It runs before FastAPI touches the request: a request without a valid token is refused
    with 401 before a byte of its body is read, and a body over the limit with 413 as soon as
    its declared length, or what has been read of it, passes the limit. Every response carries
    `X-Request-ID`, the id under which the server logs what happened.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        protection: ProtectionSettings,
        max_body_bytes: int,
        public_paths: Collection[str] = ("/health",),
        grants: GrantSigner | None = None,
    ) -> None:
        self.app = app
        self.mode = protection.mode
        self.tokens = ClientTokens(protection.tokens)
        self.grants = grants
        self.max_body_bytes = max_body_bytes
        self.public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        request_id = state["request_id"] = new_request_id()
        state["arrived"] = time.monotonic()
        refusal = self._admit(scope, state)
        if refusal is not None:
            headers = {"Connection": "close"} if refusal is ErrorCode.REQUEST_TOO_LARGE else {}
            await error_response(RelayError(refusal, request_id), headers)(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "x-request-id" not in headers:
                    headers.append("X-Request-ID", request_id)
            await send(message)

        await self.app(scope, _LimitedBody(receive, self.max_body_bytes).receive, send_with_id)

    def _admit(self, scope: Scope, state: dict[str, object]) -> ErrorCode | None:
        public = scope["method"] == "OPTIONS" or scope["path"] in self.public_paths
        if public or self.mode == "open":
            state["client_id"] = ANONYMOUS
        else:
            client = self._client(scope) if self.mode != "closed" else None
            if client is None:
                return ErrorCode.UNAUTHORIZED
            state["client_id"] = client
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return ErrorCode.REQUEST_TOO_LARGE
        return None

    def _client(self, scope: Scope) -> str | None:
        """The client of a bearer token, or of a grant cookie for this path (a browser's GET)."""
        client = self.tokens.client_for(_header(scope, b"authorization"))
        if client is not None or self.grants is None:
            return client
        for name, value in _cookies(_header(scope, b"cookie")):
            if name == GRANT_COOKIE and (found := self.grants.verify(value, scope["path"])):
                return found
        return None


class BodyTooLarge(HTTPException):
    """Raised while the body is read, once it passes the limit (a chunked body has no length).

    An HTTPException, because FastAPI turns any other error raised while it reads a body into a
    400; this one reaches `body_too_large_handler` and is answered in the error contract.
    """

    def __init__(self) -> None:
        super().__init__(status_code=413)


class _LimitedBody:
    """Counts the body as it is read and stops reading once it passes the limit."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self._limit = limit
        self._read = 0

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._read += len(message.get("body", b""))
            if self._read > self._limit:
                raise BodyTooLarge
        return message


async def body_too_large_handler(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None) or new_request_id()
    # Connection: close, so that the server does not read the rest of the body to reuse it.
    return error_response(
        RelayError(ErrorCode.REQUEST_TOO_LARGE, request_id), {"Connection": "close"}
    )


def _cookies(header: str | None) -> list[tuple[str, str]]:
    pairs = []
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            pairs.append((name, value))
    return pairs


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


# Field names are echoed back in a 422 only when they look like field names: a client that sends
# a 60 KB key gets "<field>", not its 60 KB back.
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,39}")
MAX_ERRORS_SHOWN = 10


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A 422 that says what is wrong and where, and echoes none of the input back."""
    assert isinstance(exc, RequestValidationError)
    detail = [
        {
            "loc": [
                part if isinstance(part, int) or _FIELD_NAME.fullmatch(str(part)) else "<field>"
                for part in error.get("loc", ())
            ],
            "msg": str(error.get("msg", ""))[:200],
            "type": str(error.get("type", "")),
        }
        for error in exc.errors()[:MAX_ERRORS_SHOWN]
    ]
    request_id = getattr(request.state, "request_id", None) or new_request_id()
    body = {**RelayError(ErrorCode.INVALID_REQUEST, request_id).body(), "detail": detail}
    return JSONResponse(body, status_code=422, headers={"X-Request-ID": request_id})


def log_protection_mode(protection: ProtectionSettings, app_title: str) -> None:
    """Say at startup how the app is protected (in the server log, never in a response)."""
    level = logging.INFO if protection.mode == "authenticated" else logging.WARNING
    if protection.mode == "closed":
        level = logging.ERROR
    log_event(
        level, "protection", app=app_title, mode=protection.mode, detail=protection.describe()
    )
