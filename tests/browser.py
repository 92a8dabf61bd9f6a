"""Shared headless-Chromium helpers of the browser tests (the book's pages, a widget in JupyterLab).

Playwright (pinned in requirements.txt) drives the system's Chromium (Debian's ``chromium``, or the
executable named by ``$NADBOOK_CHROMIUM``); it never downloads a browser.  Tests call
:func:`chromium_or_skip`, which skips them with the reason shown when no Chromium or no Playwright is
installed.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

#: Flags for headless Chromium in containers and CI machines.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


def find_chromium() -> str | None:
    """The Chromium executable: ``$NADBOOK_CHROMIUM``, else the usual names on the PATH; None if none."""
    for candidate in (os.environ.get("NADBOOK_CHROMIUM"), "/usr/bin/chromium", "chromium",
                      "chromium-browser", "google-chrome"):
        if candidate and (Path(candidate).is_file() or shutil.which(candidate)):
            return candidate if Path(candidate).is_file() else shutil.which(candidate)
    return None


def chromium_or_skip(what: str = "the pages"):
    """``(chromium_path, playwright.sync_api)``, or skip the test saying what was not checked."""
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(f"no Chromium found (install Debian's `chromium` or set NADBOOK_CHROMIUM); {what} "
                    "were not checked in a browser")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                   "(pip install -r requirements.txt)")
    return chromium, sync_api


@contextmanager
def headless_chromium(sync_api, chromium: str):
    """A launched headless Chromium browser (closed on exit)."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_plotly_page(browser, path: Path, *, width: int, height: int):
    """Open a saved Plotly HTML page at ``path`` in a new tab and wait until its figure has drawn.

    Returns ``(page, errors)``: ``errors`` collects the page's uncaught JavaScript errors from the start.
    """
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(Path(path).as_uri())
    page.wait_for_function("document.querySelector('.plotly-graph-div .main-svg') !== null")
    return page, errors
