"""Notebook 06 in a real headless Chromium: tokens render as they come, Stop stops, errors show,
EventSource resumes after dropped connections with the grant cookie, and a seventh stream to
one origin waits over HTTP/1.1 but not over HTTP/2."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lessons.mock_providers import Fault
from lessons.proxy_browser import chat_page, resumable
from lessons.relay_core import ProtectionSettings
from lessons.relay_core.errors import MESSAGES, ErrorCode  # the fixed client-facing texts
from lessons.toolkit.browser import (
    StreamSpan,
    chromium_available,
    chromium_page,
    measure_event_sources,
)
from lessons.toolkit.nginx import location_block, nginx_available, openssl_available, run_nginx
from lessons.toolkit.proxies_and_browsers import (
    CutAfterEvents,
    LessonServers,
    lesson_servers,
    store_requested,
)
from lessons.toolkit.pytest_fixtures import require_or_skip

pytestmark = pytest.mark.browser

IMAGES = Path(__file__).resolve().parents[1] / "notebooks" / "images"
CHAT_SCREENSHOT = IMAGES / "06_chat_mid_stream.png"
RESUMED_SCREENSHOT = IMAGES / "06_resumable_resumed.png"
PROMPT = "Explain streaming in one paragraph."
TOKEN = "browser-client-token-0123456789"


@pytest.fixture(scope="module")
def apps() -> Iterator[LessonServers]:
    with lesson_servers() as servers:
        yield servers


@pytest.fixture
def mock(apps: LessonServers) -> Any:
    apps.mock.reset()
    return apps.mock


@pytest.fixture(scope="module")
def browser_page() -> Iterator[Any]:
    require_or_skip(chromium_available(), "Chromium is not installed (apt-get install chromium)")
    # One browser for the module (Playwright's sync API runs one at a time per thread). It
    # accepts any certificate, for the self-signed one of the HTTP/2 test's nginx: acceptable
    # for a throwaway browser that only visits pages on loopback served by the test itself.
    with chromium_page(height=360, ignore_https_errors=True) as opened:
        opened.set_default_timeout(15_000)
        yield opened


@pytest.fixture
def page(browser_page: Any) -> Iterator[Any]:
    yield browser_page
    browser_page.unroute_all()
    browser_page.context.clear_cookies()


def _ask(page: Any, url: str, message: str = PROMPT) -> None:
    page.goto(url)
    page.fill("#message", message)
    page.click("#send")


def _state(page: Any) -> str:
    return page.get_attribute("#status", "data-state")


def _wait_for_state(page: Any, state: str) -> None:
    page.wait_for_function(f"document.getElementById('status').dataset.state === '{state}'")


def _screenshot(page: Any, stored: Path, tmp_path: Path) -> None:
    """The notebook's screenshot is refreshed only on request, so a test run leaves the tree
    clean; otherwise it goes to a temporary file, to prove the page can be captured."""
    shot = stored if store_requested() else tmp_path / stored.name
    page.screenshot(path=str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")


def test_first_token_is_visible_before_the_stream_ends(mock, apps, page, tmp_path) -> None:
    mock.set_timing(token_interval_ms=15)
    _ask(page, apps.url("page", chat_page.create_app))
    page.wait_for_function("document.getElementById('reply').textContent.length > 0")
    seen_at = time.monotonic()
    # Mid-stream screenshot for the notebook, once a readable part of the reply is there.
    page.wait_for_function("document.getElementById('reply').textContent.length > 120")
    mid_state = _state(page)
    if mid_state == "streaming":
        _screenshot(page, CHAT_SCREENSHOT, tmp_path)
    _wait_for_state(page, "done")
    request = mock.wait_until_finished(mock.last_request(), timeout=5)
    assert request.finished_at is not None and seen_at < request.finished_at
    assert mid_state == "streaming"
    assert page.text_content("#reply") == request.reply_text
    assert page.is_hidden("#error")


def test_stop_cancels_the_upstream(mock, apps, page) -> None:
    mock.set_timing(token_interval_ms=50)
    _ask(page, apps.url("page", chat_page.create_app))
    page.wait_for_function("document.getElementById('reply').textContent.length > 0")
    page.click("#stop")
    _wait_for_state(page, "stopped")
    observed = mock.wait_until_finished(mock.last_request(), timeout=5)
    assert observed.outcome == "client_disconnected"
    assert observed.tokens_sent < observed.tokens_planned


def test_error_event_is_shown_as_an_error(mock, apps, page) -> None:
    mock.script(fault=Fault.error_event(after_tokens=3, kind="overloaded"))
    _ask(page, apps.url("page", chat_page.create_app))
    _wait_for_state(page, "error")
    message = page.text_content("#error")
    assert message in set(MESSAGES.values()), "the page must show the server's fixed message"
    assert page.is_visible("#error")
    assert message not in page.text_content("#reply")
    assert page.text_content("#reply"), "the tokens before the error stay on the page"


def test_http_error_before_the_stream_is_shown_as_an_error(mock, apps, page) -> None:
    mock.script(fault=Fault.http_error(429, retry_after=2))
    _ask(page, apps.url("page", chat_page.create_app))
    _wait_for_state(page, "error")
    assert page.text_content("#error") == MESSAGES[ErrorCode.RATE_LIMITED]
    assert page.text_content("#reply") == ""


def test_eventsource_reconnects_and_resumes_exactly(mock, apps, page, tmp_path) -> None:
    mock.set_timing(token_interval_ms=10)
    # The network drops every connection after 30 events; the app knows nothing of it.
    cutter = CutAfterEvents(resumable.create_app(), after_events=30, retry_ms=100)
    _ask(page, apps.url("cut-every-30", lambda: cutter))
    page.wait_for_function(
        "document.getElementById('status').dataset.reconnects !== '0' &&"
        "document.getElementById('status').dataset.state !== 'reconnecting'"
    )
    if _state(page) == "streaming":
        _screenshot(page, RESUMED_SCREENSHOT, tmp_path)
    _wait_for_state(page, "done")
    assert page.text_content("#reply") == mock.last_request().reply_text
    assert int(page.get_attribute("#status", "data-reconnects")) == 3
    # 96 events: the browser resumed after exactly the last event each connection delivered.
    assert cutter.last_event_ids == [None, "30", "60", "90"]
    assert len(mock.requests) == 1, "reconnects must resume the reply, not start new ones"


def test_the_page_reads_with_its_grant_cookie_not_a_token(mock, apps, page) -> None:
    """Only the POST carries the bearer token (added here, as a site's own login would); the
    EventSource's GETs authenticate with the HttpOnly grant cookie, which no script can read."""
    protected = ProtectionSettings(tokens={TOKEN: "browser"})
    url = apps.url("protected", lambda: resumable.create_app(protection=protected))
    sent: list[tuple[str, str, bool]] = []

    def note(request: Any) -> None:
        sent.append((request.method, request.url, "authorization" in request.headers))

    page.on("request", note)

    def with_token(route: Any) -> None:
        route.continue_(headers={**route.request.headers, "authorization": f"Bearer {TOKEN}"})

    page.route("**/chat/generations", with_token)
    _ask(page, url)
    _wait_for_state(page, "done")
    page.remove_listener("request", note)
    assert page.text_content("#reply") == mock.last_request().reply_text
    assert page.evaluate("document.cookie") == "", "an HttpOnly grant is out of the page's reach"
    reads = [r for r in sent if r[0] == "GET" and r[1].endswith("/events")]
    assert reads and not any(has_token for *_, has_token in reads)


def _opened_before_the_first_end(spans: list[StreamSpan]) -> int:
    assert all(s.done_ms is not None and s.opened_ms is not None for s in spans), spans
    first_end = min(s.done_ms for s in spans if s.done_ms is not None)
    return sum(1 for s in spans if s.opened_ms is not None and s.opened_ms < first_end)


@pytest.mark.slow
@pytest.mark.nginx
def test_a_seventh_stream_waits_over_http_1_1_but_not_over_http_2(mock, apps, page) -> None:
    require_or_skip(nginx_available(), "nginx is not installed (apt-get install nginx-light)")
    require_or_skip(openssl_available(), "openssl is not installed (apt-get install openssl)")
    mock.set_timing(token_interval_ms=10)
    upstream = apps.url("resumable", resumable.create_app)
    block = location_block(http_version="1.1")
    with (
        run_nginx(upstream, block) as plain,
        run_nginx(upstream, block, tls=True, http2=True) as multiplexed,
    ):
        http1 = measure_event_sources(page, plain.url, streams=7, message=PROMPT)
        http2 = measure_event_sources(page, multiplexed.url, streams=7, message=PROMPT)
    assert http1[0] == "http/1.1" and http2[0] == "h2"
    # Over HTTP/1.1 six connections per origin: the seventh opens once one of them is done.
    assert _opened_before_the_first_end(http1[1]) == 6
    # Over HTTP/2 every stream shares one connection: all seven open at once.
    assert _opened_before_the_first_end(http2[1]) == 7
    assert len(mock.requests) == 28  # 7 + 7 per setup: a warm-up round, then the measured one
