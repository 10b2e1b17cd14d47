"""Short-lived grants: how a browser page reads a stream it cannot send a bearer token to.

`EventSource` cannot set an `Authorization` header, and `useChat`'s default transport sends
none. So the authenticated POST that starts a generation also answers with a grant: an HttpOnly
cookie, scoped by its `Path` to that one generation's URLs and signed by the server, saying
"client C may read path P until time T". The browser sends it with its GETs (same origin), and
`RelayGuard` accepts it in place of a bearer token for that path only.

Why a cookie and not a token in the URL: a URL ends up in proxy logs, browser history and
`Referer` headers; an HttpOnly cookie is out of reach of the page's scripts, and `SameSite=Strict`
keeps other sites from making the browser send it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time

from lessons.relay_core.logs import log_event

GRANT_KEY_ENV = "RELAY_GRANT_KEY"
GRANT_COOKIE = "relay_grant"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class GrantSigner:
    """Issues and checks grants with one secret key (shared by every worker of a service)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a grant key has at least 32 bytes")
        self._key = key

    @classmethod
    def from_env(cls) -> GrantSigner:
        """The key from RELAY_GRANT_KEY (hex), or a random one for this process only.

        With several workers the key must be shared (`relay_core.server.serve` sets one for its
        workers), or a grant issued by one worker is refused by the next.
        """
        configured = os.environ.get(GRANT_KEY_ENV, "")
        if configured:
            return cls(bytes.fromhex(configured))
        log_event(logging.INFO, "grant_key", source="random, for this process only")
        return cls(secrets.token_bytes(32))

    def _sign(self, message: bytes) -> bytes:
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def issue(self, client_id: str, path: str, ttl_s: float) -> str:
        """A grant for `client_id` to read URLs under `path`, valid for `ttl_s` seconds."""
        expires = int(time.time() + ttl_s)
        message = f"{client_id}|{path}|{expires}".encode()
        return f"{_b64(message)}.{_b64(self._sign(message))}"

    def verify(self, grant: str, path: str) -> str | None:
        """The client id of a valid, unexpired grant covering `path`, else None."""
        encoded, _, signature = grant.partition(".")
        try:
            message, presented = _unb64(encoded), _unb64(signature)
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(self._sign(message), presented):
            return None
        try:
            client_id, scope, expires = message.decode().rsplit("|", 2)
        except ValueError:
            return None
        if int(expires) < time.time() or not (path == scope or path.startswith(scope + "/")):
            return None
        return client_id


def grant_cookie(signer: GrantSigner, client_id: str, path: str, ttl_s: float) -> str:
    """A `Set-Cookie` value carrying a grant for `path`, sent back only to URLs under it."""
    grant = signer.issue(client_id, path, ttl_s)
    return f"{GRANT_COOKIE}={grant}; Max-Age={int(ttl_s)}; Path={path}; HttpOnly; SameSite=Strict"
