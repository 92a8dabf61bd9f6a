"""The Chapter 1 training widget works in a real browser: JupyterLab + headless Chromium.

A JupyterLab server is started on ``127.0.0.1`` (a free port, a random token, a temporary root folder
holding a small notebook that builds ``nadlib.book.widgets.fourier_train_widget`` as Chapter 1 does, from
the packaged precomputed maps), in the ``smoke`` profile.  Chromium opens the notebook, runs all cells,
clicks a Fourier coefficient square and "train now", and waits until the widget shows a final test
accuracy.  LeNet is chosen (10,000 training samples an epoch, as in the ``default`` profile).  The seconds
to the first answer (the test accuracy after one epoch, with its binomial error, streamed while the run goes
on) and to the final answer are printed (no timed assertion; the target is a first answer within 5 s).

Skipped, with the reason shown, when JupyterLab, Playwright or Chromium is missing.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from browser import chromium_or_skip, headless_chromium

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # guards a hang of the server or browser

ROOT = Path(__file__).resolve().parents[1]
#: the square clicked: (kx, ky) = (8, 0), on the grid for every widget stride that divides 8
FREQ_TITLE = "(kx, ky) = (8, 0) "
SERVER_START_S = 120
ANSWER_TIMEOUT_S = 300  # only guards a hang; the smoke profile answers in seconds

NOTEBOOK_CELLS = [
    "import nadlib; print(nadlib.describe_environment())",
    # as Chapter 1 does: precomputed maps by architecture, then the widget with the profile
    "from nadlib.book import widgets\n"
    "profile = nadlib.get_profile()\n"
    "by_arch = {'logreg': nadlib.GridResult.from_artifact(nadlib.result_path('grid_logreg_paper_s2.npz')),\n"
    "           'lenet': nadlib.GridResult.from_artifact(nadlib.result_path('grid_lenet_paper_s4.npz'))}\n"
    "w = widgets.fourier_train_widget(by_arch, profile, archs=list(by_arch));",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A running JupyterLab: yields ``(base_url, token)``; stopped (its process only) afterwards."""
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed (pip install -r requirements.txt)")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in NOTEBOOK_CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "widget.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, NADLIB_PROFILE="smoke", JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.root_dir={tmp_path}", f"--IdentityProvider.token={token}",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=", "--LabApp.extension_manager=readonly",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_fourier_widget_trains_in_jupyterlab(lab, tmp_path):
    chromium, sync_api = chromium_or_skip("the widget")
    base, token = lab
    errors: list[str] = []
    with headless_chromium(sync_api, chromium) as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
        page.goto(f"{base}/lab/tree/widget.ipynb?token={token}", wait_until="load", timeout=120_000)
        page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                               "&& window.jupyterapp.shell.currentWidget.sessionContext", timeout=120_000)
        page.wait_for_function("window.jupyterapp.shell.currentWidget.sessionContext.session "
                               "&& window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                               timeout=120_000)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        square = page.locator(f'button[title^="{FREQ_TITLE}"]')
        square.wait_for(state="visible", timeout=180_000)
        page.locator(".widget-dropdown select").first.select_option("lenet")  # the network of the issue
        square.click()
        page.wait_for_function("[...document.querySelectorAll('.widget-html-content')]"
                               ".some(e => e.textContent.includes('selected (kx, ky) = (8, 0)'))", timeout=60_000)
        start = time.perf_counter()
        page.get_by_role("button", name="train now").click()
        # the first reading: the test accuracy after epoch 1, with its binomial error
        page.wait_for_function("[...document.querySelectorAll('.widget-html-content')]"
                               ".some(e => /epoch 1 of \\d+: test accuracy/.test(e.textContent))",
                               timeout=ANSWER_TIMEOUT_S * 1000)
        first_s = time.perf_counter() - start
        page.wait_for_function("[...document.querySelectorAll('.widget-html-content')]"
                               ".some(e => e.textContent.includes('final test accuracy'))",
                               timeout=ANSWER_TIMEOUT_S * 1000)
        answer_s = time.perf_counter() - start
        status = page.locator(".widget-html-content", has_text="final test accuracy").inner_text()
        page.screenshot(path=str(tmp_path / "widget.png"), full_page=True)
    match = re.search(r"final test accuracy\s+([01]\.\d{3})", status)
    assert match, f"no accuracy in the widget's status: {status!r}"
    acc = float(match.group(1))
    print(f"\nLeNet widget in Chromium (smoke profile: 10,000 training samples an epoch, as in default): "
          f"first answer (epoch 1, with its binomial error) {first_s:.1f} s after the click, final answer "
          f"{answer_s:.1f} s; accuracy {acc:.3f}; screenshot {tmp_path / 'widget.png'}")
    assert 0 < first_s <= answer_s
    assert 0.0 <= acc <= 1.0
    assert "(8, 0)" in status
    assert not errors, errors
