"""Live computations with a wall-clock budget, and torch thread counts that suit a busy machine.

A chapter's live cell must finish on a reader's laptop, which is rarely idle.  Instead of hoping that a
fixed amount of work fits, a live cell hands its units of work (directions, networks, runs) to
:func:`within_budget` with a budget in seconds taken from the run profile:

* the first ``essential`` units always run (the chapter's claims are written for them);
* after that, a unit starts only when the time spent so far plus the mean time of a finished unit still
  fits in the budget, so the cell ends near its budget instead of far past it;
* before each unit the torch thread count is chosen anew by :func:`free_cores`, so that a machine that
  becomes busy slows down gracefully (one thread) instead of collapsing (two spin-waiting OpenMP threads
  fighting two other processes for two cores).

The result, a :class:`Budgeted`, holds what was computed and says so in one line
(``"3 of 6 directions in the 120 s budget (97 s)"``), which the chapter prints beside its figure.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from tqdm.auto import tqdm

__all__ = ["Budgeted", "within_budget", "free_cores", "use_free_cores"]


def _runnable_now() -> int | None:
    """Processes ready to run on this machine right now (Linux ``/proc/loadavg``), or None elsewhere."""
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def free_cores(samples: int = 5, interval_s: float = 0.02) -> int:
    """How many cores this process can use without oversubscribing the machine (at least 1).

    The number of runnable processes is sampled a few times (Linux: ``/proc/loadavg``, an instantaneous
    count that includes this process; elsewhere the 1-minute load average) and the median taken; the
    cores not claimed by the others are ours.  On an idle 2-core machine this is 2; with two busy
    processes beside us it is 1.
    """
    cores = os.cpu_count() or 1
    counts = []
    for i in range(samples):
        n = _runnable_now()
        if n is None:
            break
        counts.append(n)
        if i + 1 < samples:
            time.sleep(interval_s)
    if counts:
        others = max(0, round(statistics.median(counts)) - 1)
    else:
        try:
            others = round(os.getloadavg()[0])
        except (AttributeError, OSError):
            others = 0
    return max(1, min(cores, cores - others))


def use_free_cores() -> int:
    """Set torch's intra-op thread count to :func:`free_cores` and return it (CPU work only)."""
    n = free_cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@dataclass
class Budgeted:
    """What a budgeted live computation did: ``results`` (unit -> result, in the order run), the units that
    were ``planned``, the ``budget_s`` and the ``seconds`` it took, ``what`` a unit is called (plural), and
    the torch ``threads`` used for each unit."""

    results: dict
    planned: list
    budget_s: float
    seconds: float
    what: str = "runs"
    threads: list = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every planned unit ran."""
        return len(self.results) == len(self.planned)

    @property
    def skipped(self) -> list:
        """The planned units that did not fit in the budget."""
        return [u for u in self.planned if u not in self.results]

    @property
    def summary(self) -> str:
        """One line: how many of the planned units ran, the budget and the time taken."""
        return (f"{len(self.results)} of {len(self.planned)} {self.what} in the {self.budget_s:.0f} s budget "
                f"({self.seconds:.0f} s)")

    def __contains__(self, unit) -> bool:
        return unit in self.results

    def __getitem__(self, unit):
        return self.results[unit]

    def __len__(self) -> int:
        return len(self.results)

    def items(self):
        return self.results.items()

    def values(self):
        return self.results.values()

    def keys(self):
        return self.results.keys()


def within_budget(fn: Callable[[Any], Any], units: Iterable, budget_s: float, *, essential: int = 1,
                  what: str = "runs", threads: str | int | None = "auto", progress: bool = True) -> Budgeted:
    """Run ``fn(unit)`` for the units in order until the wall-clock ``budget_s`` runs out.

    Args:
        fn: called once per unit; its return value is stored under the unit.
        units: the planned units (hashable: they key the results), most important first.
        budget_s: seconds for the whole call (positive).  A unit after the first ``essential`` ones starts
            only when the elapsed time plus the mean time of the finished units stays within the budget.
        essential: how many leading units run whatever the budget (0 to ``len(units)``).
        what: the plural name of a unit in the summary ("directions").
        threads: ``"auto"`` sets torch's thread count by :func:`use_free_cores` before each unit; an int
            sets it once; None leaves it alone.  The count is restored afterwards.
        progress: a transient progress bar over the units.

    Raises:
        ValueError: a non-positive budget, ``essential`` out of range, repeated units, a bad ``threads``.
    """
    planned = list(units)
    if isinstance(budget_s, bool) or not isinstance(budget_s, (int, float)) or not budget_s > 0:
        raise ValueError(f"budget_s must be a positive number of seconds, got {budget_s!r}")
    if isinstance(essential, bool) or not isinstance(essential, int) or not 0 <= essential <= len(planned):
        raise ValueError(f"essential must be an int from 0 to the number of units ({len(planned)}), "
                         f"got {essential!r}")
    if len(set(planned)) != len(planned):
        raise ValueError(f"units must be distinct (they key the results), got {planned!r}")
    if not (threads is None or threads == "auto" or (isinstance(threads, int) and not isinstance(threads, bool)
                                                       and threads >= 1)):
        raise ValueError(f"threads must be 'auto', a positive int or None, got {threads!r}")
    start, before = time.perf_counter(), torch.get_num_threads()
    results, used, durations = {}, [], []
    if isinstance(threads, int):
        torch.set_num_threads(threads)
    try:
        bar = tqdm(planned, desc=f"{what} (budget {budget_s:.0f} s)", leave=False, disable=not progress)
        for i, unit in enumerate(bar):
            elapsed = time.perf_counter() - start
            if i >= essential and durations and elapsed + statistics.fmean(durations) > budget_s:
                break
            if i >= essential and elapsed >= budget_s:
                break
            if threads == "auto":
                use_free_cores()
            used.append(torch.get_num_threads())
            t0 = time.perf_counter()
            results[unit] = fn(unit)
            durations.append(time.perf_counter() - t0)
        bar.close()
    finally:
        torch.set_num_threads(before)
    return Budgeted(results, planned, float(budget_s), time.perf_counter() - start, what, used)
