"""Test-session settings: every test and notebook runs in the ``smoke`` profile unless told otherwise.

Setting ``NADLIB_PROFILE`` here (before any test imports ``nadlib``) also reaches the kernels that
nbval and the book build start, because they inherit this process's environment.  Run a single test in
another profile with e.g. ``NADLIB_PROFILE=default pytest tests/...``.
"""

import os

os.environ.setdefault("NADLIB_PROFILE", "smoke")


def pytest_report_header(config):
    return f"NADLIB_PROFILE={os.environ['NADLIB_PROFILE']}"
