"""Drive the system's Chromium headless with Playwright, for browser tests, measurements and
screenshots."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# Browser downloads are impossible here, so Playwright drives the distribution's Chromium.
_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")

CHROMIUM_ARGS = [
    "--headless=new",
    # Root (CI containers) cannot use Chromium's sandbox; the pages are our own local ones.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_binary() -> str | None:
    configured = os.environ.get("CHROMIUM_PATH")
    if configured and os.access(configured, os.X_OK):
        return configured
    return next((path for path in _CANDIDATES if os.access(path, os.X_OK)), None)


def chromium_available() -> bool:
    """True when a Chromium binary runs and the playwright package is importable."""
    binary = chromium_binary()
    if binary is None:
        return False
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    try:
        result = subprocess.run([binary, "--version"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@contextmanager
def chromium_page(
    *, width: int = 900, height: int = 600, ignore_https_errors: bool = False
) -> Iterator[Any]:
    """A fresh page in a headless Chromium with a new, empty profile; everything closed after.

    `ignore_https_errors=True` makes this browser accept any certificate, such as the
    self-signed one `run_nginx(tls=True)` makes for one run (what `--ignore-certificate-errors`
    does): acceptable for a throwaway test browser on loopback, never for one you browse with.
    """
    from playwright.sync_api import sync_playwright

    binary = chromium_binary()
    if binary is None:
        raise RuntimeError("Chromium is not installed (Debian/Ubuntu: apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=binary,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": width, "height": height},
                ignore_https_errors=ignore_https_errors,
            )
            try:
                page = context.pages[0] if context.pages else context.new_page()
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


# Runs in a page of the resumable app: starts `streams` generations with fetch, then opens one
# EventSource per generation at once and notes, on the page's own clock, when each connection
# opened, when its first token and its `done` arrived. Times are ms after the POSTs were sent.
_EVENT_SOURCES_JS = """
async ({streams, message, timeoutMs}) => {
  const t0 = performance.now();
  const since = () => performance.now() - t0;
  const started = await Promise.all(Array.from({length: streams}, () =>
    fetch("/chat/generations", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({message}),
    }).then((response) => response.json())));
  const created = since();
  const spans = started.map(() => ({created, opened: null, first: null, done: null}));
  await new Promise((resolve) => {
    let open = streams;
    const timer = setTimeout(resolve, timeoutMs);
    started.forEach((generation, i) => {
      const source = new EventSource(generation.events);
      source.addEventListener("open", () => { spans[i].opened ??= since(); });
      source.addEventListener("token", () => { spans[i].first ??= since(); });
      source.addEventListener("done", () => {
        spans[i].done = since();
        source.close();
        if (--open === 0) { clearTimeout(timer); resolve(); }
      });
    });
  });
  const protocol = performance.getEntriesByType("navigation")[0].nextHopProtocol;
  return {protocol, spans};
}
"""


@dataclass(frozen=True)
class StreamSpan:
    """One EventSource of a page: when its connection opened, its first token and its end came.

    Milliseconds on the page's clock after the page sent its POSTs; None when it never happened
    within the measurement's time limit."""

    created_ms: float
    opened_ms: float | None
    first_token_ms: float | None
    done_ms: float | None


def measure_event_sources(
    page: Any,
    app_url: str,
    *,
    streams: int = 7,
    message: str,
    warm_up_message: str | None = "Say hello.",
    timeout_s: float = 20.0,
) -> tuple[str, list[StreamSpan]]:
    """Open `streams` EventSources at once from a page of the resumable app at `app_url`.

    Returns the protocol the page was loaded over (`http/1.1`, `h2`) and one span per stream, in
    the order they were opened. Over HTTP/1.1 a browser opens at most six connections to one
    origin, so a seventh stream waits for one of them to close.

    A first round with `warm_up_message` (a short reply), not measured, opens the connections
    (browser to proxy, proxy to app, app to provider) that a first request on a fresh machine
    pays for: what is measured is the connection limit, not first-request costs.
    """
    page.goto(app_url.rstrip("/") + "/")
    rounds = [warm_up_message, message] if warm_up_message else [message]
    found: dict[str, Any] = {}
    for text in rounds:
        found = page.evaluate(
            _EVENT_SOURCES_JS,
            {"streams": streams, "message": text, "timeoutMs": int(timeout_s * 1000)},
        )
    spans = [StreamSpan(s["created"], s["opened"], s["first"], s["done"]) for s in found["spans"]]
    return str(found["protocol"]), spans


def event_source_spans(
    app_urls: Mapping[str, str],
    *,
    streams: int = 7,
    message: str,
    ignore_https_errors: bool = False,
) -> dict[str, tuple[str, list[StreamSpan]]]:
    """`measure_event_sources` for each labelled URL, in one fresh headless Chromium.

    Chromium is driven from a thread of its own: Playwright's sync API refuses to run in a
    thread where an asyncio loop is running, as it is in a notebook's kernel.
    """

    def run() -> dict[str, tuple[str, list[StreamSpan]]]:
        with chromium_page(ignore_https_errors=ignore_https_errors) as page:
            page.set_default_timeout(20_000)
            return {
                label: measure_event_sources(page, url, streams=streams, message=message)
                for label, url in app_urls.items()
            }

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromium") as pool:
        return pool.submit(run).result()


__all__ = [
    "CHROMIUM_ARGS",
    "StreamSpan",
    "chromium_available",
    "chromium_binary",
    "chromium_page",
    "event_source_spans",
    "measure_event_sources",
]
