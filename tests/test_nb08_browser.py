"""Notebook 08's React page (useChat, default transport) in a real headless Chromium: text shows
before the reply ends, a tool part moves through its states, Stop cancels the upstream, a reload
mid-reply resumes the whole reply, errors show as errors."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lessons.chat_ui.app import create_app
from lessons.mock_providers import Fault
from lessons.relay_core import ProtectionSettings
from lessons.relay_core.errors import MESSAGES, ErrorCode
from lessons.toolkit.browser import chromium_available, chromium_page
from lessons.toolkit.pytest_fixtures import require_or_skip

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[1] / "notebooks" / "images" / "08_chat_page.png"
# The notebook's screenshot is refreshed only on request, so a test run leaves the tree clean.
STORE = os.environ.get("WORKBOOK_STORE_MEASUREMENTS") == "1"
TOKEN = "chat-page-client-token-0123456789"

# Records every state each tool part shows, as the page renders it (set before the page loads).
RECORD_TOOL_STATES = """
window.__toolStates = {};
new MutationObserver(() => {
  for (const el of document.querySelectorAll('.tool[data-call]')) {
    const seen = (window.__toolStates[el.dataset.call] ||= []);
    if (seen[seen.length - 1] !== el.dataset.state) seen.push(el.dataset.state);
  }
}).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
"""


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    require_or_skip(chromium_available(), "Chromium is not installed (apt-get install chromium)")
    with chromium_page(width=900, height=640) as browser_page:
        browser_page.set_default_timeout(15_000)
        browser_page.add_init_script(RECORD_TOOL_STATES)
        yield browser_page


def status(page: Any) -> str:
    return page.get_attribute("#status", "data-state")


def ask(page: Any, url: str, message: str, *, tools: bool = True) -> None:
    page.goto(url + "/")
    page.wait_for_selector("#message")
    if not tools:
        page.uncheck("#tools")
    page.fill("#message", message)
    page.click("#send")


def wait_until_ready(page: Any) -> None:
    page.wait_for_function(
        "['ready', 'error', 'stopped'].includes(document.getElementById('status').dataset.state)"
        " && document.querySelectorAll('.message.assistant').length > 0"
    )


def reply_text(page: Any) -> str:
    return "".join(page.locator(".message.assistant").last.locator(".text").all_text_contents())


def test_text_appears_before_the_reply_ends(mock, serve, page, tmp_path: Path) -> None:
    mock.set_timing(token_interval_ms=20)
    ask(page, serve(create_app()), "Explain streaming in one paragraph.", tools=False)
    page.wait_for_function("document.querySelector('.message.assistant .text')?.textContent")
    seen_at = time.monotonic()
    wait_until_ready(page)
    request = mock.wait_until_finished(mock.last_request(), timeout=5)
    assert request.finished_at is not None and seen_at < request.finished_at
    assert reply_text(page) == request.reply_text
    assert status(page) == "ready" and page.is_hidden("#error")


def test_a_tool_part_moves_through_its_states_to_its_output(
    mock, serve, page, tmp_path: Path
) -> None:
    mock.set_timing(token_interval_ms=25)
    ask(page, serve(create_app()), "Look up Paris and Tokyo in the city table.")
    # Mid-stream, once the tools ran and the answer is coming: the notebook's screenshot.
    page.wait_for_function(
        "document.querySelectorAll('.tool[data-state=\"output-available\"]').length === 2"
        " && document.querySelector('.message.assistant .text')?.textContent.length > 40"
    )
    if status(page) == "streaming":
        shot = SCREENSHOT if STORE else tmp_path / SCREENSHOT.name
        page.screenshot(path=str(shot))
        assert shot.read_bytes().startswith(b"\x89PNG")
    wait_until_ready(page)
    states = page.evaluate("window.__toolStates")
    assert len(states) == 2
    for seen in states.values():
        # input-available may last less than a frame: the tool runs as soon as its input is whole.
        assert seen[0] == "input-streaming" and seen[-1] == "output-available", seen
    outputs = page.locator(".tool .output").all_text_contents()
    assert "France" in outputs[0] and "Japan" in outputs[1]
    assert "France" in reply_text(page) and status(page) == "ready"


def test_stop_makes_the_server_cancel_its_upstream(mock, serve, page) -> None:
    mock.set_timing(token_interval_ms=40)
    ask(page, serve(create_app()), "What is machine learning?", tools=False)
    page.wait_for_function("document.querySelector('.message.assistant .text')?.textContent")
    page.click("#stop")
    page.wait_for_function("document.getElementById('status').dataset.state === 'stopped'")
    seen = mock.wait_until_finished(mock.last_request(), timeout=5)
    assert seen.outcome == "client_disconnected", "Stop must end the provider's stream"
    assert seen.tokens_sent < seen.tokens_planned
    assert reply_text(page), "the text before the stop stays on the page"


def test_a_reload_mid_reply_resumes_and_shows_the_whole_reply(mock, serve, page) -> None:
    mock.set_timing(token_interval_ms=30)
    ask(page, serve(create_app()), "Explain streaming in one paragraph.", tools=False)
    page.wait_for_function(
        "document.querySelector('.message.assistant .text')?.textContent.length > 30"
    )
    page.reload()
    page.wait_for_selector(".message.user")
    wait_until_ready(page)
    (request,) = mock.requests
    assert request.outcome in ("completed", "in_progress")
    assert reply_text(page) == request.reply_text, "resumed from the start, nothing lost"
    assert page.locator(".message.user").all_text_contents() == [
        "Explain streaming in one paragraph."
    ], "the conversation before the reply comes back too"
    assert status(page) == "ready"


@pytest.mark.slow
def test_an_error_event_shows_as_an_error(mock, serve, page) -> None:
    mock.script(fault=Fault.error_event(after_tokens=3), times=None)
    ask(page, serve(create_app()), "What is machine learning?", tools=False)
    page.wait_for_function("document.getElementById('status').dataset.state === 'error'")
    assert page.text_content("#error") == MESSAGES[ErrorCode.PROVIDER_ERROR]
    assert reply_text(page), "the text before the error stays"


def test_an_http_error_before_the_stream_shows_as_an_error(mock, serve, page) -> None:
    mock.script(fault=Fault.http_error(429, retry_after=2), times=None)
    ask(page, serve(create_app()), "Say hello.", tools=False)
    page.wait_for_function("document.getElementById('status').dataset.state === 'error'")
    assert page.text_content("#error") == MESSAGES[ErrorCode.RATE_LIMITED]


@pytest.mark.slow
def test_with_client_tokens_the_page_sends_its_token(mock, serve, page) -> None:
    url = serve(create_app(protection=ProtectionSettings(tokens={TOKEN: "page"})))
    ask(page, url, "Say hello.", tools=False)
    page.wait_for_function("document.getElementById('status').dataset.state === 'error'")
    assert page.text_content("#error") == MESSAGES[ErrorCode.UNAUTHORIZED]
    page.fill("#token", TOKEN)
    page.fill("#message", "Say hello.")
    page.click("#send")
    page.wait_for_function("document.getElementById('status').dataset.state === 'ready'")
    assert reply_text(page) == "Hello! How can I help you today?"
