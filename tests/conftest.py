"""Test-session settings: every test and notebook runs in the ``smoke`` profile unless told otherwise.

Setting ``NADLIB_PROFILE`` here (before any test imports ``nadlib``) also reaches the kernels that
nbval and the book build start, because they inherit this process's environment.  Run a single test in
another profile with e.g. ``NADLIB_PROFILE=default pytest tests/...``.
"""

import os
import threading

os.environ.setdefault("NADLIB_PROFILE", "smoke")
# Cap the threads of torch (and of the kernels nbval starts, through the environment): on a shared or
# small CPU, more threads than cores makes the slow tests several times slower.
THREADS = os.environ.setdefault("NADLIB_TEST_THREADS", str(min(2, os.cpu_count() or 1)))
os.environ.setdefault("OMP_NUM_THREADS", THREADS)

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

torch.set_num_threads(int(THREADS))

# Progress bars in forked test processes (``make mutants`` forks one pytest per mutant): tqdm's default
# write lock includes a *multiprocessing* lock shared by every forked process, and its monitor thread
# takes that lock every 10 s.  A process forked while the lock is held, or killed while holding it,
# leaves it held for good, and every later bar waits on it forever (mutants that switch a bar on hung
# until their timeout).  A thread-only lock and no monitor thread keep each process independent.
tqdm.monitor_interval = 0
tqdm.set_lock(threading.RLock())


def pytest_report_header(config):
    return f"NADLIB_PROFILE={os.environ['NADLIB_PROFILE']}, torch threads {torch.get_num_threads()}"
