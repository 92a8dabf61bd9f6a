"""The README's main command, ``make book`` in the ``default`` profile, builds the book with warnings as
errors, and its pages load in Chromium.

What it does:

1. ``make book PROFILE=default BOOK_OUT=<tmp>``: the Makefile's own ``jupyter-book build -n -W --keep-going``
   into a temporary ``--path-output``, so neither the project's ``_build/`` nor any execution cache (the
   smoke profile's included) is reused: every chapter executes at the ``default`` sizes, as for a reader.
   Then checks that ``index.html`` and one page per ``_toc.yml`` entry exist, and prints the execution time
   of each chapter (the appendix shows the same table, written by the build).
2. Serves the built HTML on ``127.0.0.1`` (a local ``http.server``) and opens ``index.html`` and
   every page in headless Chromium through Playwright.  Requests to any other host are blocked, so
   the test sees the book as an offline reader does.  It fails on any uncaught JavaScript exception,
   any ``console.error`` (except "failed to load" messages for the blocked external requests), any
   local resource answering 4xx/5xx, and any Plotly figure that did not draw.  A full-page PNG
   screenshot of each page is saved (path printed; set ``NADBOOK_SCREENSHOTS=/some/dir`` to choose).

Running it locally::

    sudo apt-get install chromium          # Debian/Ubuntu; any Chromium/Chrome works
    make test                              # or: .venv/bin/pytest tests/test_book_build.py -s
    NADBOOK_CHROMIUM=/path/to/chrome .venv/bin/pytest tests/test_book_build.py -s   # other browser

Playwright (pinned in requirements.txt) drives the system's Chromium; it never downloads a browser.
The browser part is skipped, with the reason shown, only when no Chromium executable is found.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from booktoc import toc_pages
from browser import chromium_or_skip, headless_chromium

pytestmark = [pytest.mark.book, pytest.mark.timeout(1800)]  # the module builds the whole book once

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 1700  # the default chapters take a few minutes in all; this only guards a hang


def _jupyter_book() -> str:
    exe = Path(sys.executable).parent / "jupyter-book"
    return str(exe) if exe.exists() else (shutil.which("jupyter-book") or "jupyter-book")


@pytest.fixture(scope="module")
def built_book(tmp_path_factory) -> Path:
    """Build the book once for this module with ``make book`` (default profile); return the ``html`` folder."""
    out = tmp_path_factory.mktemp("book")
    env = {k: v for k, v in os.environ.items() if k not in ("NADLIB_PROFILE", "MAKEFLAGS", "MAKELEVEL")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(["make", "--no-print-directory", "book", "PROFILE=default", f"BOOK_OUT={out}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    if proc.returncode != 0:
        lines = proc.stdout.splitlines()
        flagged = [ln for ln in lines if ("WARNING" in ln or "ERROR" in ln) and "IPKernelApp" not in ln]
        pytest.fail(f"make book failed (exit {proc.returncode}); warnings and errors:\n"
                    + "\n".join(flagged[:40]) + "\n--- last lines of the log ---\n"
                    + "\n".join(lines[-60:]) + proc.stderr[-3000:], pytrace=False)
    print("\n" + _execution_times(out / "_build" / ".jupyter_cache-default"))
    return out / "_build" / "html"


def _execution_times(cache: Path) -> str:
    """The execution time of each chapter in a build's jupyter-cache (what the appendix's table shows)."""
    from jupyter_cache import get_cache

    records = get_cache(str(cache)).list_cache_records()
    rows = [f"  {Path(r.uri).name}: {r.data.get('execution_seconds', float('nan')):.0f} s" for r in records]
    return "chapters executed by make book (default profile):\n" + "\n".join(sorted(rows))


def test_book_builds_with_all_pages(built_book):
    assert (built_book / "index.html").is_file()
    missing = [p for p in toc_pages() if not (built_book / f"{p}.html").is_file()]
    assert not missing, f"pages listed in _toc.yml but not built: {missing}"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output readable
        pass


@pytest.fixture(scope="module")
def served_book(built_book):
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_pages_load_without_javascript_errors(served_book, tmp_path_factory):
    chromium, sync_api = chromium_or_skip("the built pages")
    shots = Path(os.environ.get("NADBOOK_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    local_host = urlparse(served_book).netloc
    pages = ["index"] + toc_pages()
    problems: dict[str, list[str]] = {}
    blocked: set[str] = set()

    with headless_chromium(sync_api, chromium) as browser:
        for page_name in pages:
            errors: list[str] = []
            blocked_here: set[str] = set()
            page = browser.new_page(viewport={"width": 1280, "height": 900})

            def route(r, request):
                if urlparse(request.url).netloc == local_host:
                    r.continue_()
                else:
                    blocked_here.add(request.url)  # noqa: B023 (used within this iteration)
                    r.abort()

            def on_console(msg, errors=errors, blocked_here=blocked_here):
                if msg.type != "error":
                    return
                url = (msg.location or {}).get("url", "")
                if msg.text.startswith("Failed to load resource") and url in blocked_here:
                    return
                errors.append(f"console.error: {msg.text} ({url})")

            def on_response(resp, errors=errors):
                if urlparse(resp.url).netloc == local_host and resp.status >= 400:
                    errors.append(f"HTTP {resp.status} for {resp.url}")

            page.route("**/*", route)
            page.on("console", on_console)
            page.on("pageerror", lambda exc, errors=errors: errors.append(f"uncaught: {exc}"))
            page.on("response", on_response)
            page.goto(f"{served_book}/{page_name}.html", wait_until="load", timeout=60_000)
            page.wait_for_timeout(1_000)  # let deferred scripts and Plotly finish drawing
            n_plots = page.locator(".plotly-graph-div").count()
            n_drawn = page.locator(".plotly-graph-div .main-svg").count()
            if n_plots and n_drawn == 0:
                errors.append(f"{n_plots} Plotly figure(s) did not draw")
            shot = shots / f"{page_name.replace('/', '__')}.png"
            page.screenshot(path=str(shot), full_page=True)
            page.close()
            blocked |= blocked_here
            if errors:
                problems[page_name] = errors

    print(f"\nscreenshots of {len(pages)} pages: {shots}")
    if blocked:
        print("external requests blocked (the pages must work without them):\n  "
              + "\n  ".join(sorted(blocked)))
    assert not problems, "JavaScript problems in the built book:\n" + "\n".join(
        f"{page}: {msg}" for page, msgs in problems.items() for msg in msgs)
