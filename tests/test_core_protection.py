"""Every guard of the core, each tested with a request it must refuse (and one it must let by).

A small app on `create_relay_app` with routes that call no provider stands in for a lesson app:
the guards are the same middleware and dependencies in every lesson app.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import replace
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from lessons.relay_core import (
    BudgetSettings,
    ChatRequest,
    ErrorCode,
    MemoryBudgets,
    ProtectionSettings,
    Refusal,
    RelayContext,
    RelaySettings,
    create_relay_app,
    parse_client_tokens,
)
from lessons.relay_core.grants import GrantSigner, grant_cookie
from lessons.relay_core.protection import ClientTokens
from lessons.toolkit.background import BackgroundServer

TOKEN = "tok_" + "a" * 28
OTHER = "tok_" + "b" * 28
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str
    max_tokens: int | None = None


router = APIRouter()


@router.post("/probe")
async def probe(body: ChatRequest, relay: RelayContext) -> dict[str, Any]:
    return {
        "client": relay.client_id,
        "max_tokens": relay.max_tokens(body.max_tokens),
        "system": relay.system_prompt(body),
    }


@router.get("/chat/generations/{generation_id}/events")
async def read_generation(generation_id: str, relay: RelayContext) -> dict[str, str]:
    return {"client": relay.client_id}


def serve(**kwargs: Any) -> BackgroundServer:
    protection = kwargs.pop("protection", ProtectionSettings(tokens={TOKEN: "web"}))
    app = create_relay_app(
        title="guarded", routers=[router], providers=(), protection=protection, **kwargs
    )
    return BackgroundServer(app).start()


@pytest.fixture(scope="module")
def guarded() -> Any:
    server = serve(
        settings=RelaySettings(max_body_bytes=2_000, default_max_tokens=50, max_tokens_cap=100)
    )
    yield server
    server.stop()


# --- client tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (":web", "shorter than 16"),  # RELAY_CLIENT_TOKENS="${UNSET}:web"
        ("short:web", "shorter than 16"),
        (f"{TOKEN}web", "no ':'"),
        ("tok_\u00a0" + "a" * 20 + ":web", "invalid characters"),
        (f"{TOKEN}:", "not a short name"),
    ],
)
def test_unsafe_client_tokens_are_refused_when_settings_load(raw: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        parse_client_tokens(raw)
    assert TOKEN not in str(caught.value), "the message must never show the token"


def test_tokens_parse_into_clients() -> None:
    assert parse_client_tokens(f" {TOKEN}:web, {OTHER}:cli ,") == {TOKEN: "web", OTHER: "cli"}


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Bearer \u00a0", "Bearer\u00a0" + TOKEN, f"Bearer  {TOKEN}",
     f"Basic {TOKEN}", f"Bearer {OTHER}", f"Bearer {TOKEN} ", f"Bearer {TOKEN[:-1]}"],
)  # fmt: skip
def test_a_bearer_header_is_accepted_only_exactly(header: str | None) -> None:
    assert ClientTokens({TOKEN: "web"}).client_for(header) is None


def test_the_right_token_names_its_client() -> None:
    tokens = ClientTokens({TOKEN: "web", OTHER: "cli"})
    assert tokens.client_for(f"Bearer {OTHER}") == "cli"
    assert tokens.client_for(f"bearer {TOKEN}") == "web"


# --- the guard, over HTTP -------------------------------------------------------------------------


def raw_request(url: str, head: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Send only the request line and headers (no body), and read the answer: a server that
    waits for the body before answering times out here."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1"))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def test_no_token_is_refused_before_the_body_is_read(guarded: BackgroundServer) -> None:
    status, head = raw_request(
        guarded.url,
        "POST /probe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n",
    )
    assert status == 401
    assert b"www-authenticate: Bearer" in head.lower().replace(b"bearer", b"Bearer")


def test_a_declared_oversized_body_is_refused_before_it_is_read(guarded: BackgroundServer) -> None:
    status, _ = raw_request(
        guarded.url,
        f"POST /probe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\nContent-Length: 8000000\r\n\r\n",
    )
    assert status == 413


def test_a_chunked_body_is_cut_off_at_the_limit(guarded: BackgroundServer) -> None:
    def chunks() -> Any:
        yield b'{"message": "'
        for _ in range(1_000):  # 1 MB, sent without a length
            yield b"x" * 1_000
        yield b'"}'

    response = httpx.post(f"{guarded.url}/probe", content=chunks(), headers=HEADERS)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == ErrorCode.REQUEST_TOO_LARGE
    assert len(response.content) < 300


def test_a_422_echoes_nothing_back(guarded: BackgroundServer) -> None:
    secret = "S3CRET-" + "y" * 1_500
    response = httpx.post(
        f"{guarded.url}/probe", json={"message": secret, secret[:60]: 1, "max_tokens": "x"},
        headers=HEADERS,
    )  # fmt: skip
    assert response.status_code == 422
    assert "S3CRET" not in response.text and len(response.content) < 1_000
    body = response.json()
    assert body["error"]["code"] == ErrorCode.INVALID_REQUEST and body["detail"]
    assert all(set(error) == {"loc", "msg", "type"} for error in body["detail"])


def test_a_good_request_passes_every_guard(guarded: BackgroundServer) -> None:
    response = httpx.post(f"{guarded.url}/probe", json={"message": "hi"}, headers=HEADERS)
    assert response.status_code == 200, response.text
    assert response.json()["client"] == "web"
    assert response.headers["x-request-id"].startswith("req_")


def test_the_max_tokens_cap_is_read_at_request_time(guarded: BackgroundServer) -> None:
    ok = httpx.post(
        f"{guarded.url}/probe", json={"message": "hi", "max_tokens": 100}, headers=HEADERS
    )
    over = httpx.post(
        f"{guarded.url}/probe", json={"message": "hi", "max_tokens": 101}, headers=HEADERS
    )
    assert ok.json()["max_tokens"] == 100
    assert over.status_code == 422 and over.json()["detail"][0]["loc"] == ["body", "max_tokens"]


def test_a_deployed_app_decides_the_system_prompt() -> None:
    settings = RelaySettings(client_system_prompt=False, system_prompt="Server policy.")
    with serve(settings=settings) as server:
        chosen = httpx.post(
            f"{server.url}/probe",
            json={"message": "hi", "system_prompt": "Obey me."},
            headers=HEADERS,
        )
        default = httpx.post(f"{server.url}/probe", json={"message": "hi"}, headers=HEADERS)
    assert chosen.status_code == 422 and "Obey" not in chosen.text
    assert default.json()["system"] == "Server policy."


def test_a_deployed_app_without_tokens_refuses_everyone_but_health() -> None:
    with serve(protection=ProtectionSettings(deployed=True)) as server:
        assert httpx.post(f"{server.url}/probe", json={"message": "hi"}).status_code == 401
        guessed = httpx.post(f"{server.url}/probe", json={"message": "hi"}, headers=HEADERS)
        assert guessed.status_code == 401
        assert httpx.get(f"{server.url}/health").status_code == 200


def test_a_teaching_app_without_tokens_serves_openly_and_says_so_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="lessons.relay"),
        serve(protection=ProtectionSettings()) as server,
    ):
        response = httpx.post(f"{server.url}/probe", json={"message": "hi"})
    assert response.status_code == 200 and response.json()["client"] == "anonymous"
    assert "RELAY_CLIENT_TOKENS is not set" in caplog.text


def test_cors_answers_named_origins_only() -> None:
    protection = ProtectionSettings(tokens={TOKEN: "web"}, allowed_origins=("https://app.example",))
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    with serve(protection=protection) as server:
        allowed = httpx.options(
            f"{server.url}/probe", headers={"Origin": "https://app.example", **preflight}
        )
        other = httpx.options(
            f"{server.url}/probe", headers={"Origin": "https://evil.example", **preflight}
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other.headers


# --- budgets ------------------------------------------------------------------------------------


def test_budgets_refuse_over_each_limit_with_a_retry_after() -> None:
    budgets = MemoryBudgets(
        BudgetSettings(
            max_concurrent_streams=1, requests_per_minute=60, burst=2, tokens_per_window=100
        )
    )
    first = budgets.admit_now("c", reserve_tokens=50, now=0.0)
    assert not isinstance(first, Refusal)
    busy = budgets.admit_now("c", reserve_tokens=50, now=0.0)
    assert busy == Refusal(ErrorCode.TOO_MANY_STREAMS, 1)
    asyncio.run(budgets.release(first, used_tokens=40))
    second = budgets.admit_now("c", reserve_tokens=10, now=0.0)  # the burst's second request
    assert not isinstance(second, Refusal)
    asyncio.run(budgets.release(second, used_tokens=50))
    rate = budgets.admit_now("c", reserve_tokens=10, now=0.0)
    assert rate == Refusal(ErrorCode.CLIENT_RATE_LIMITED, 1)
    spent = budgets.admit_now("c", reserve_tokens=50, now=10.0)  # the bucket refilled; 90 used
    assert spent == Refusal(ErrorCode.TOKEN_BUDGET_EXHAUSTED, 3590)
    assert not isinstance(budgets.admit_now("c", reserve_tokens=50, now=3_601.0), Refusal)
    assert not isinstance(budgets.admit_now("other", reserve_tokens=50, now=0.0), Refusal)


def test_concurrent_admissions_cannot_overshoot_a_limit() -> None:
    budgets = MemoryBudgets(BudgetSettings(max_concurrent_streams=4, burst=100))

    async def together() -> list[Any]:
        return await asyncio.gather(*(budgets.admit("c", reserve_tokens=1) for _ in range(50)))

    results = asyncio.run(together())
    assert sum(not isinstance(r, Refusal) for r in results) == 4


def test_a_refusal_over_http_is_a_429_with_retry_after() -> None:
    protection = ProtectionSettings(
        tokens={TOKEN: "web"}, budgets=BudgetSettings(burst=1, requests_per_minute=1)
    )
    with serve(protection=protection) as server:
        first = httpx.post(f"{server.url}/probe", json={"message": "hi"}, headers=HEADERS)
        second = httpx.post(f"{server.url}/probe", json={"message": "hi"}, headers=HEADERS)
    assert first.status_code == 200
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1
    assert second.json()["error"]["code"] == ErrorCode.CLIENT_RATE_LIMITED


# --- grants: a browser's GET without an Authorization header -------------------------------------


def test_a_grant_covers_its_path_until_it_expires() -> None:
    signer = GrantSigner(b"k" * 32)
    grant = signer.issue("web", "/chat/generations/abc", ttl_s=60)
    assert signer.verify(grant, "/chat/generations/abc/events") == "web"
    assert signer.verify(grant, "/chat/generations/abcd/events") is None
    assert signer.verify(grant, "/chat/generations/other/events") is None
    assert GrantSigner(b"x" * 32).verify(grant, "/chat/generations/abc") is None
    tampered = grant.replace(grant[2], "A" if grant[2] != "A" else "B", 1)
    assert signer.verify(tampered, "/chat/generations/abc") is None
    assert signer.verify(signer.issue("web", "/p", ttl_s=-1), "/p") is None


def test_the_guard_accepts_a_grant_cookie_for_its_path_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELAY_GRANT_KEY", "ab" * 32)
    cookie = grant_cookie(GrantSigner(bytes.fromhex("ab" * 32)), "web", "/chat/generations/g1", 60)
    value = cookie.split(";")[0]
    with serve() as server:
        own = httpx.get(f"{server.url}/chat/generations/g1/events", headers={"Cookie": value})
        other = httpx.get(f"{server.url}/chat/generations/g2/events", headers={"Cookie": value})
        probe = httpx.post(f"{server.url}/probe", json={"message": "hi"}, headers={"Cookie": value})
    assert own.status_code == 200 and own.json()["client"] == "web"
    assert other.status_code == 401 and probe.status_code == 401
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_a_draining_server_refuses_new_streams() -> None:
    with serve() as server:
        server.app.state.streams.draining = True
        refused = httpx.post(f"{server.url}/probe", json={"message": "hi"}, headers=HEADERS)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == ErrorCode.SHUTTING_DOWN


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        RelaySettings(idle_timeout_s=0)
    with pytest.raises(ValueError):
        replace(RelaySettings(), default_max_tokens=2_000)
    with pytest.raises(ValueError):
        ProtectionSettings(tokens={"": "web"})
    assert time.monotonic() > 0
