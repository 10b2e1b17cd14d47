"""Notebook 06 through a real nginx: default buffering holds the stream (one lump for a short
reply, buffer-sized lumps for a long one); the fixes restore it; read timeouts, upstream
keep-alive, gzip, and TLS with HTTP/2."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lessons.mock_providers import Fault
from lessons.proxy_browser import buffered_pitfall, relay
from lessons.relay_core import RelaySettings
from lessons.toolkit import nginx
from lessons.toolkit.nginx import (
    TimedStream,
    check_config,
    location_block,
    nginx_available,
    openssl_available,
    render_config,
    run_nginx,
    timed_stream,
)
from lessons.toolkit.proxies_and_browsers import LessonServers, lesson_servers
from lessons.toolkit.pytest_fixtures import require_or_skip

pytestmark = pytest.mark.nginx

PROMPT = {"message": "Explain streaming in one paragraph."}
# About 15 KB of events: more than three of nginx's 4 KB proxy buffers.
LONG_REPLY = " ".join(["Streaming sends each piece of a reply as soon as it is ready."] * 30)
UNBUFFERED = location_block(buffering=False, http_version="1.1")


@pytest.fixture(scope="module")
def apps() -> Iterator[LessonServers]:
    with lesson_servers() as servers:
        yield servers


@pytest.fixture
def mock(apps: LessonServers) -> Any:
    apps.mock.reset()
    return apps.mock


@pytest.fixture
def needs_nginx() -> None:
    require_or_skip(nginx_available(), "nginx is not installed (apt-get install nginx-light)")


def _relay(apps: LessonServers) -> str:
    return apps.url("relay", relay.create_app)


def _pitfall(apps: LessonServers) -> str:
    return apps.url("pitfall", lambda: buffered_pitfall.app)


def _through(upstream: str, block: str, label: str, **options: Any) -> TimedStream:
    with run_nginx(upstream, block) as proxy:
        return timed_stream(f"{proxy.url}/chat/stream", PROMPT, label=label, **options)


def test_default_buffering_delivers_a_short_reply_at_the_end(mock, apps, needs_nginx) -> None:
    mock.set_timing(token_interval_ms=10)
    result = _through(_pitfall(apps), location_block(), "buffered")
    request = mock.last_request()
    assert result.text == request.reply_text
    # Judged on the mock's own clock: nothing reached the client before the mock was done.
    assert request.finished_at is not None
    assert result.token_times[0] >= request.finished_at
    assert result.terminal is not None and result.terminal.kind == "done"


@pytest.mark.parametrize(
    ("app_name", "block"),
    [("relay", location_block()), ("pitfall", UNBUFFERED)],
    ids=["x-accel-buffering-from-the-app", "proxy_buffering-off-in-the-config"],
)
def test_either_fix_restores_streaming(mock, apps, needs_nginx, app_name, block) -> None:
    mock.set_timing(token_interval_ms=10)
    upstream = _relay(apps) if app_name == "relay" else _pitfall(apps)
    result = _through(upstream, block, app_name)
    request = mock.last_request()
    assert result.text == request.reply_text
    assert request.finished_at is not None
    assert result.token_times[0] < request.finished_at, "first token only after the mock finished"


def test_a_reply_longer_than_the_buffers_arrives_in_buffer_sized_lumps(
    mock, apps, needs_nginx
) -> None:
    mock.script(reply=LONG_REPLY, token_interval_ms=2)
    result = _through(_pitfall(apps), location_block(), "lumps")
    request = mock.wait_until_finished(mock.last_request(), timeout=10)
    assert result.text == request.reply_text
    body = sum(size for _, size in result.chunks)
    assert body > 3 * 4096, "the reply must be longer than three proxy buffers"
    sizes = [size for _, size in result.chunks]
    # nginx passes a buffer on when it is full (4 KB or 8 KB, the memory page size), not a
    # token at a time: a few large pieces, the first of them sent before the reply ended.
    assert len(sizes) <= body // 4096 + 3, f"not buffer-sized pieces: {sizes}"
    assert max(sizes) <= 8192 and sizes[0] >= 2048, sizes
    assert request.finished_at is not None
    assert result.started_at + result.chunks[0][0] / 1000 < request.finished_at


def test_read_timeout_cuts_a_silent_stream_and_pings_keep_it(mock, apps, needs_nginx) -> None:
    block = location_block(buffering=False, http_version="1.1", read_timeout="500ms")
    mock.script(fault=Fault.stall(after_tokens=2, seconds=1.0), times=2)
    cut = _through(_pitfall(apps), block, "no pings")
    assert cut.terminal is None, "nginx should have closed the silent upstream"
    assert cut.transport_error is not None, "the client should see the stream cut short"
    pinging = apps.url(
        "pinging", lambda: relay.create_app(RelaySettings(keepalive_interval_s=0.15))
    )
    kept = _through(pinging, block, "pings")
    assert kept.terminal is not None and kept.terminal.kind == "done"
    assert kept.comments >= 3


def test_http_1_1_to_the_upstream_reuses_one_connection(mock, apps, needs_nginx) -> None:
    seen: list[tuple[str, int]] = []
    app = relay.create_app()

    @app.middleware("http")
    async def record(request, call_next):  # type: ignore[no-untyped-def]
        seen.append((request.scope["http_version"], request.client.port))
        return await call_next(request)

    upstream = apps.url("counted", lambda: app)
    for version in ("1.0", "1.1"):
        with run_nginx(upstream, location_block(http_version=version)) as proxy:
            for _ in range(3):
                assert httpx.post(f"{proxy.url}/chat/stream", json=PROMPT).status_code == 200
    old, new = seen[:3], seen[3:]
    assert {v for v, _ in old} == {"1.0"} and len({p for _, p in old}) == 3
    assert {v for v, _ in new} == {"1.1"} and len({p for _, p in new}) == 1


def test_nginx_gzip_still_streams_with_buffering_off(mock, apps, needs_nginx) -> None:
    mock.set_timing(token_interval_ms=10)
    block = location_block(buffering=False, http_version="1.1", gzip=True)
    result = _through(_relay(apps), block, "gzip", headers={"Accept-Encoding": "gzip"})
    request = mock.last_request()
    assert result.headers.get("content-encoding") == "gzip"
    assert result.text == request.reply_text
    assert request.finished_at is not None and result.token_times[0] < request.finished_at


def test_runner_keeps_everything_in_its_own_directory_and_cleans_up(
    mock, apps, needs_nginx
) -> None:
    require_or_skip(openssl_available(), "openssl is not installed (apt-get install openssl)")
    with run_nginx(_relay(apps), tls=True) as proxy:
        workdir, process = proxy.workdir, proxy.process
        for directive in (
            "pid",
            "error_log",
            "access_log",
            "client_body_temp_path",
            "proxy_temp_path",
            "fastcgi_temp_path",
            "uwsgi_temp_path",
            "scgi_temp_path",
            "ssl_certificate",
            "ssl_certificate_key",
        ):
            line = next(x for x in proxy.config.splitlines() if x.strip().startswith(directive))
            assert str(workdir) in line, line
        assert (workdir / "cert.pem").exists(), "the certificate is made for this run"
        response = httpx.post(f"{proxy.url}/chat/stream", json=PROMPT, verify=False)
        assert response.status_code == 200
    assert process.poll() is not None, "nginx still running after the block"
    assert not workdir.exists(), "the run's directory, certificate included, must be removed"


def _alpn(url: str) -> str | None:
    """The protocol nginx agrees to in the TLS handshake when offered HTTP/2 and HTTP/1.1."""
    host, port = url.removeprefix("https://").split(":")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the run's own self-signed certificate
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return tls.selected_alpn_protocol()


def test_tls_with_http2_offers_h2_and_still_streams(mock, apps, needs_nginx) -> None:
    require_or_skip(openssl_available(), "openssl is not installed (apt-get install openssl)")
    mock.set_timing(token_interval_ms=10)
    with run_nginx(_relay(apps), UNBUFFERED, tls=True, http2=True) as proxy:
        assert proxy.url.startswith("https://") and proxy.http2
        assert _alpn(proxy.url) == "h2"
        result = timed_stream(f"{proxy.url}/chat/stream", PROMPT, label="tls", verify=False)
    with run_nginx(_relay(apps), UNBUFFERED, tls=True) as plain_tls:
        assert _alpn(plain_tls.url) in (None, "http/1.1")
    request = mock.last_request()
    assert result.text == request.reply_text
    assert request.finished_at is not None and result.token_times[0] < request.finished_at


def test_listen_lines_follow_the_installed_nginx(monkeypatch: pytest.MonkeyPatch) -> None:
    tls = (Path("/x/cert.pem"), Path("/x/key.pem"))

    def config(version: tuple[int, ...], **options: Any) -> str:
        monkeypatch.setattr(nginx, "nginx_version", lambda: version)
        return render_config(
            Path("/x"), port=1, upstream="http://127.0.0.1:2", locations="", **options
        )

    assert "listen 127.0.0.1:1;" in config((1, 22, 1))
    old = config((1, 22, 1), tls=tls, http2=True)
    assert "listen 127.0.0.1:1 ssl http2;" in old and "http2 on;" not in old
    new = config((1, 26, 0), tls=tls, http2=True)
    assert "listen 127.0.0.1:1 ssl;" in new and "http2 on;" in new
    assert "ssl_certificate /x/cert.pem;" in new and "ssl_certificate_key /x/key.pem;" in new
    with pytest.raises(ValueError, match="TLS"):
        config((1, 26, 0), http2=True)


def test_user_directive_only_for_root(monkeypatch: pytest.MonkeyPatch) -> None:
    def config() -> str:
        return render_config(Path("/x"), port=1, upstream="http://127.0.0.1:2", locations="")

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "user " not in config()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert config().startswith("user root;")


def test_check_config_reports_nginx_errors(needs_nginx) -> None:
    assert check_config(location_block(buffering=False)) is None
    message = check_config("location / { proxy_bufering off; }")
    assert message is not None and "proxy_bufering" in message
