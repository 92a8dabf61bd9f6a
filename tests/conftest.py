"""Test-session settings: every test and notebook runs in the ``smoke`` profile unless told otherwise.

Setting ``NADLIB_PROFILE`` here (before any test imports ``nadlib``) also reaches the kernels that
nbval and the book build start, because they inherit this process's environment.  Run a single test in
another profile with e.g. ``NADLIB_PROFILE=default pytest tests/...``.
"""

import os
import threading

os.environ.setdefault("NADLIB_PROFILE", "smoke")
# Cap the threads of torch (and of the kernels nbval starts, through the environment): on a shared or
# small CPU, more threads than cores makes the slow tests several times slower.  Under pytest-xdist
# (``make test`` runs TEST_WORKERS processes) the cores are shared out between the workers, so that two
# workers on two cores run one thread each.  ``NADLIB_TEST_THREADS`` overrides the share; it is read, never
# written, so that the workers do not inherit the main process's value as if the user had set it.


def _threads(workers: int) -> str:
    """Torch threads of each of ``workers`` test processes: ``NADLIB_TEST_THREADS``, else their share of at
    most 2 cores."""
    return os.environ.get("NADLIB_TEST_THREADS") or str(max(1, min(2, os.cpu_count() or 1) // max(workers, 1)))


THREADS = _threads(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
os.environ["OMP_NUM_THREADS"] = THREADS

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
    workers = getattr(config.option, "numprocesses", None) or 0  # the main process of -n N runs no test
    where = f"in each of {workers} xdist workers" if workers else "in this process"
    return f"NADLIB_PROFILE={os.environ['NADLIB_PROFILE']}, torch threads {_threads(workers)} {where}"


# pytest-xdist (``make test``) hands the test files to its workers in collection order, a file at a time
# (``--dist loadfile --no-loadscope-reorder``; xdist's default reorder would put the files with the fewest
# tests, among them the longest, last).  Longest first, so that no worker is left running one of them alone at
# the end: the files below (serial durations on 2 cores), then the chapters under nbval, then the many short
# files.  The order of the tests inside a file, and of the other files, is kept.
LONGEST_FIRST = ("test_book_build.py", "test_claims.py", "test_catalogue_e2e.py", "test_packaging.py",
                 "test_paper_run.py", "test_training.py", "test_interruption.py", "test_nads.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank) + (item.path.suffix != ".ipynb")))
