"""Drive the system's Chromium headless with Playwright, for browser tests and screenshots."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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
def chromium_page(*, width: int = 900, height: int = 600) -> Iterator[Any]:
    """A fresh page in a headless Chromium with a new, empty profile; everything closed after."""
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
            )
            try:
                page = context.pages[0] if context.pages else context.new_page()
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


__all__ = ["CHROMIUM_ARGS", "chromium_available", "chromium_binary", "chromium_page"]
