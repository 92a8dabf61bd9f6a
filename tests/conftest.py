"""Test-session settings: every test and notebook runs in the ``smoke`` profile unless told otherwise.

Setting ``NADLIB_PROFILE`` here (before any test imports ``nadlib``) also reaches the kernels that
nbval and the book build start, because they inherit this process's environment.  Run a single test in
another profile with e.g. ``NADLIB_PROFILE=default pytest tests/...``.
"""

import os

os.environ.setdefault("NADLIB_PROFILE", "smoke")
# Cap the threads of torch (and of the kernels nbval starts, through the environment): on a shared or
# small CPU, more threads than cores makes the slow tests several times slower.
THREADS = os.environ.setdefault("NADLIB_TEST_THREADS", str(min(2, os.cpu_count() or 1)))
os.environ.setdefault("OMP_NUM_THREADS", THREADS)

import torch  # noqa: E402

torch.set_num_threads(int(THREADS))


def pytest_report_header(config):
    return f"NADLIB_PROFILE={os.environ['NADLIB_PROFILE']}, torch threads {torch.get_num_threads()}"
