"""Notebook 06 in a real headless Chromium: tokens render as they come, Stop stops, errors show."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lessons.proxy_browser import chat_page, resumable
from lessons.relay_core.errors import MESSAGES, ErrorCode  # the fixed client-facing texts
from lessons.toolkit.browser import chromium_available, chromium_page
from lessons.toolkit.pytest_fixtures import require_or_skip

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[1] / "notebooks" / "images" / "06_chat_mid_stream.png"
# The notebook's screenshot is refreshed only on request, so a test run leaves the tree clean.
STORE = os.environ.get("WORKBOOK_STORE_MEASUREMENTS") == "1"
PROMPT = "Explain streaming in one paragraph."


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    require_or_skip(chromium_available(), "Chromium is not installed (apt-get install chromium)")
    with chromium_page(height=360) as browser_page:
        browser_page.set_default_timeout(15_000)
        yield browser_page


def _ask(page: Any, url: str, message: str = PROMPT) -> None:
    page.goto(url)
    page.fill("#message", message)
    page.click("#send")


def _state(page: Any) -> str:
    return page.get_attribute("#status", "data-state")


def test_first_token_is_visible_before_the_stream_ends(mock, serve, page, tmp_path: Path) -> None:
    mock.set_timing(token_interval_ms=15)
    _ask(page, serve(chat_page.create_app()))
    page.wait_for_function("document.getElementById('reply').textContent.length > 0")
    seen_at = time.monotonic()
    # Mid-stream screenshot for the notebook, once a readable part of the reply is there.
    page.wait_for_function("document.getElementById('reply').textContent.length > 120")
    mid_state = _state(page)
    if mid_state == "streaming":
        shot = SCREENSHOT if STORE else tmp_path / SCREENSHOT.name
        page.screenshot(path=str(shot))
        assert shot.read_bytes().startswith(b"\x89PNG")
    page.wait_for_function("document.getElementById('status').dataset.state === 'done'")
    request = mock.last_request()
    mock.wait_until_finished(request, timeout=5)
    assert request.finished_at is not None and seen_at < request.finished_at
    assert mid_state == "streaming"
    assert page.text_content("#reply") == request.reply_text
    assert page.is_hidden("#error")


def test_stop_cancels_the_upstream(mock, serve, page) -> None:
    mock.set_timing(token_interval_ms=50)
    _ask(page, serve(chat_page.create_app()))
    page.wait_for_function("document.getElementById('reply').textContent.length > 0")
    page.click("#stop")
    page.wait_for_function("document.getElementById('status').dataset.state === 'stopped'")
    request = mock.last_request()
    mock.wait_until_finished(request, timeout=5)
    observed = mock.last_request()
    assert observed.outcome == "client_disconnected"
    assert observed.tokens_sent < observed.tokens_planned


def test_error_event_is_shown_as_an_error(mock, serve, page) -> None:
    from lessons.mock_providers import Fault

    mock.script(fault=Fault.error_event(after_tokens=3, kind="overloaded"))
    _ask(page, serve(chat_page.create_app()))
    page.wait_for_function("document.getElementById('status').dataset.state === 'error'")
    message = page.text_content("#error")
    assert message in set(MESSAGES.values()), "the page must show the server's fixed message"
    assert page.is_visible("#error")
    assert message not in page.text_content("#reply")
    assert page.text_content("#reply"), "the tokens before the error stay on the page"


def test_http_error_before_the_stream_is_shown_as_an_error(mock, serve, page) -> None:
    from lessons.mock_providers import Fault

    mock.script(fault=Fault.http_error(429, retry_after=2))
    _ask(page, serve(chat_page.create_app()))
    page.wait_for_function("document.getElementById('status').dataset.state === 'error'")
    assert page.text_content("#error") == MESSAGES[ErrorCode.RATE_LIMITED]
    assert page.text_content("#reply") == ""


def test_eventsource_reconnects_and_resumes_without_duplicates(mock, serve, page) -> None:
    mock.set_timing(token_interval_ms=5)
    app = resumable.create_app(max_events_per_connection=30, retry_ms=100)
    _ask(page, serve(app))
    page.wait_for_function("document.getElementById('status').dataset.state === 'done'")
    assert page.text_content("#reply") == mock.last_request().reply_text
    assert int(page.get_attribute("#status", "data-reconnects")) >= 2
    assert len(mock.requests) == 1, "reconnects must resume the reply, not start new ones"
