"""Notebook 06 through a real nginx: default buffering holds the stream; the fixes restore it."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from lessons.proxy_browser import buffered_pitfall, relay
from lessons.toolkit.nginx import (
    check_config,
    location_block,
    nginx_available,
    render_config,
    run_nginx,
    timed_stream,
)
from lessons.toolkit.pytest_fixtures import require_or_skip

pytestmark = pytest.mark.nginx

PROMPT = {"message": "Explain streaming in one paragraph."}


@pytest.fixture(autouse=True)
def _needs_nginx() -> None:
    require_or_skip(nginx_available(), "nginx is not installed (apt-get install nginx-light)")


def _through(upstream: str, block: str, label: str):
    with run_nginx(upstream, block) as proxy:
        return timed_stream(f"{proxy.url}/chat/stream", PROMPT, label=label)


def test_default_buffering_delivers_everything_at_the_end(mock, serve) -> None:
    mock.set_timing(token_interval_ms=10)
    result = _through(serve(buffered_pitfall.app), location_block(), "buffered")
    request = mock.last_request()
    assert result.text == request.reply_text
    # Judged against the mock's own clock: nothing reached the client before the mock was done.
    assert request.finished_at is not None
    assert result.token_times[0] >= request.finished_at
    assert result.terminal == {"token": "", "done": True}


@pytest.mark.parametrize(
    ("app_name", "block"),
    [
        ("relay", location_block()),  # X-Accel-Buffering: no from the app
        ("pitfall", location_block(buffering=False, http_version="1.1")),  # the config's fix
    ],
    ids=["x-accel-buffering", "proxy_buffering-off"],
)
def test_either_fix_restores_streaming(mock, serve, app_name, block) -> None:
    mock.set_timing(token_interval_ms=10)
    app = relay.create_app() if app_name == "relay" else buffered_pitfall.app
    result = _through(serve(app), block, app_name)
    request = mock.last_request()
    assert result.text == request.reply_text
    assert request.finished_at is not None
    assert result.token_times[0] < request.finished_at, "first token only after the mock finished"


def test_read_timeout_cuts_a_silent_stream_and_pings_keep_it(mock, serve) -> None:
    from lessons.mock_providers import Fault

    block = location_block(buffering=False, http_version="1.1", read_timeout="500ms")
    mock.script(fault=Fault.stall(after_tokens=2, seconds=1.0), times=2)
    cut = _through(serve(buffered_pitfall.app), block, "no pings")
    assert cut.terminal is None, "nginx should have closed the silent upstream"
    assert cut.transport_error is not None, "the client should see the stream cut short"
    kept = _through(serve(relay.create_app(ping_interval_s=0.15)), block, "pings")
    assert kept.terminal == {"token": "", "done": True}
    assert kept.comments >= 3


def test_upstream_http_version_and_keepalive(mock, serve) -> None:
    seen: list[tuple[str, int]] = []
    app = relay.create_app()

    @app.middleware("http")
    async def record(request, call_next):  # type: ignore[no-untyped-def]
        seen.append((request.scope["http_version"], request.client.port))
        return await call_next(request)

    upstream = serve(app)
    for version in ("1.0", "1.1"):
        with run_nginx(upstream, location_block(http_version=version)) as proxy:
            for _ in range(3):
                assert httpx.post(f"{proxy.url}/chat/stream", json=PROMPT).status_code == 200
    old, new = seen[:3], seen[3:]
    assert {v for v, _ in old} == {"1.0"} and len({p for _, p in old}) == 3
    assert {v for v, _ in new} == {"1.1"} and len({p for _, p in new}) == 1


def test_nginx_gzip_still_streams_with_buffering_off(mock, serve) -> None:
    mock.set_timing(token_interval_ms=10)
    block = location_block(buffering=False, http_version="1.1", gzip=True)
    with run_nginx(serve(relay.create_app()), block) as proxy:
        result = timed_stream(
            f"{proxy.url}/chat/stream", PROMPT, label="gzip", headers={"Accept-Encoding": "gzip"}
        )
    request = mock.last_request()
    assert result.headers.get("content-encoding") == "gzip"
    assert result.text == request.reply_text
    assert result.token_times[0] < request.finished_at


def test_runner_keeps_everything_in_its_own_directory_and_cleans_up(mock, serve) -> None:
    with run_nginx(serve(relay.create_app())) as proxy:
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
        ):
            line = next(x for x in proxy.config.splitlines() if x.strip().startswith(directive))
            assert str(workdir) in line, line
        assert httpx.post(f"{proxy.url}/chat/stream", json=PROMPT).status_code == 200
    assert process.poll() is not None, "nginx still running after the block"
    assert not workdir.exists()


def test_user_directive_only_for_root(monkeypatch: pytest.MonkeyPatch) -> None:
    def config() -> str:
        return render_config(Path("/x"), port=1, upstream="http://127.0.0.1:2", locations="")

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "user " not in config()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert config().startswith("user root;")


def test_check_config_reports_nginx_errors() -> None:
    assert check_config(location_block(buffering=False)) is None
    message = check_config("location / { proxy_bufering off; }")
    assert message is not None and "proxy_bufering" in message
