"""nadlib.budget: live computations that end near their wall-clock budget, and the thread choice."""

from __future__ import annotations

import time

import pytest
import torch

from nadlib import budget
from nadlib.budget import Budgeted, free_cores, within_budget


def _sleeper(seconds: float):
    def fn(unit):
        time.sleep(seconds)
        return unit * 10
    return fn


def test_every_unit_runs_when_the_budget_is_ample():
    out = within_budget(_sleeper(0.0), [1, 2, 3], budget_s=60, what="directions", progress=False)
    assert out.complete and out.skipped == []
    assert dict(out.items()) == {1: 10, 2: 20, 3: 30}
    assert list(out.keys()) == [1, 2, 3] and 2 in out and out[3] == 30 and len(out) == 3
    assert out.summary.startswith("3 of 3 directions in the 60 s budget")


class _Clock:
    """A virtual ``time.perf_counter`` that only the units advance: the budget logic is tested without the
    timing noise of a busy machine (a real 0.2 s sleep plus scheduling delays could exceed the margin)."""

    def __init__(self):
        self.now = 1000.0

    def perf_counter(self):
        return self.now

    def sleep(self, seconds):  # the free-core sampling between units (threads="auto") takes no virtual time
        pass

    def unit(self, seconds: float):
        def fn(unit):
            self.now += seconds
            return unit * 10
        return fn


def test_units_stop_once_the_next_would_overrun_the_budget(monkeypatch):
    # 0.2 s per unit, 0.5 s budget: after two units (0.4 s) a third would end at 0.6 s > 0.5 s
    clock = _Clock()
    monkeypatch.setattr(budget, "time", clock)
    out = within_budget(clock.unit(0.2), range(10), budget_s=0.5, what="networks", progress=False)
    assert list(out.keys()) == [0, 1]
    assert out.skipped == list(range(2, 10)) and not out.complete
    assert out.summary.startswith("2 of 10 networks in the 0 s budget")  # a 0.5 s budget prints as 0 s
    assert out.seconds < 0.5 + 0.2  # never a unit started that could not fit


def test_essential_units_run_whatever_the_budget(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(budget, "time", clock)
    out = within_budget(clock.unit(0.1), "abcde", budget_s=0.01, essential=3, progress=False)
    assert list(out.keys()) == ["a", "b", "c"]
    out = within_budget(_sleeper(0.0), "ab", budget_s=0.01, essential=0, progress=False)
    assert len(out) <= 2


def test_the_thread_count_is_restored_and_recorded():
    before = torch.get_num_threads()
    seen = []
    out = within_budget(lambda u: seen.append(torch.get_num_threads()), [0, 1], budget_s=60, threads=1,
                        progress=False)
    assert seen == [1, 1] and out.threads == [1, 1]
    assert torch.get_num_threads() == before


def test_auto_threads_follow_the_free_cores(monkeypatch):
    monkeypatch.setattr(budget, "free_cores", lambda: 1)
    seen = []
    within_budget(lambda u: seen.append(torch.get_num_threads()), [0], budget_s=60, progress=False)
    assert seen == [1]


@pytest.mark.parametrize("runnable, cores, expected", [(1, 2, 2), (2, 2, 1), (3, 2, 1), (9, 2, 1), (3, 8, 6)])
def test_free_cores_leaves_the_other_processes_their_cores(monkeypatch, runnable, cores, expected):
    monkeypatch.setattr(budget, "_runnable_now", lambda: runnable)
    monkeypatch.setattr(budget.os, "cpu_count", lambda: cores)
    assert free_cores(samples=3, interval_s=0) == expected


def test_free_cores_falls_back_to_the_load_average(monkeypatch):
    monkeypatch.setattr(budget, "_runnable_now", lambda: None)
    monkeypatch.setattr(budget.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(budget.os, "getloadavg", lambda: (2.2, 0.0, 0.0))
    assert free_cores() == 2


def test_the_runnable_count_is_read_on_linux():
    n = budget._runnable_now()
    assert n is None or n >= 1  # at least this process is running


@pytest.mark.parametrize("kwargs, message", [
    (dict(budget_s=0), "budget_s must be a positive"),
    (dict(budget_s=float("nan")), "budget_s must be a positive"),
    (dict(budget_s=True), "budget_s must be a positive"),
    (dict(budget_s=5, essential=4), "essential must be an int from 0 to the number of units (3)"),
    (dict(budget_s=5, essential=-1), "essential must be an int"),
    (dict(budget_s=5, threads=0), "threads must be 'auto'"),
    (dict(budget_s=5, threads="all"), "threads must be 'auto'"),
])
def test_bad_arguments_are_refused_before_any_work(kwargs, message):
    calls = []
    with pytest.raises(ValueError) as err:
        within_budget(calls.append, [1, 2, 3], **kwargs)
    assert message in str(err.value) and calls == []


def test_repeated_units_are_refused():
    with pytest.raises(ValueError, match="units must be distinct"):
        within_budget(lambda u: u, [1, 1], budget_s=5)


def test_a_budgeted_result_is_plain_data():
    b = Budgeted({1: "x"}, [1, 2], 30.0, 12.4, "epochs")
    assert b.summary == "1 of 2 epochs in the 30 s budget (12 s)" and b.skipped == [2]


def test_every_profiles_budgets_stay_well_under_the_books_cell_timeout():
    """The notebook execution timeout is a safety net: every live budget leaves room for its essential units
    (the timeout is at least twice every budget)."""
    import yaml
    from pathlib import Path

    import nadlib

    timeout = yaml.safe_load((Path(__file__).resolve().parents[1] / "_config.yml").read_text())["execute"]["timeout"]
    for name in nadlib.PROFILE_NAMES:
        profile = nadlib.get_profile(name)
        assert profile.budgets, name
        for cell, seconds in profile.budgets.items():
            assert 0 < profile.budget(cell) == seconds <= 0.5 * timeout, (name, cell, seconds, timeout)


def test_an_unknown_budget_name_lists_the_known_ones():
    import nadlib

    with pytest.raises(KeyError, match="ch1.lenet"):
        nadlib.get_profile("default").budget("ch9.nothing")


def test_glue_cites_strings_without_quotes_and_scalars_as_numbers(monkeypatch):
    import sys
    import types

    import numpy as np

    import nadlib

    stored = {}
    fake = types.ModuleType("myst_nb")
    fake.glue = lambda name, value, display=False: stored.__setitem__(name, value)
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    nadlib.glue("s", "default profile, 10,000 samples")
    nadlib.glue("f", np.float64(0.25))
    nadlib.glue("t", torch.tensor(3))
    from IPython.lib.pretty import pretty

    assert pretty(stored["s"]) == "default profile, 10,000 samples"
    assert type(stored["f"]) is float and stored["f"] == 0.25 and type(stored["t"]) is int
    with pytest.raises(ValueError, match="identifier"):
        nadlib.glue("not a name", 1)
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # no MyST-NB (Colab): the value is only returned
    assert nadlib.glue("x", 2.0) == 2.0


def test_every_budget_is_used_by_a_chapter():
    """A budget that no chapter reads is a setting nobody can see take effect."""
    from pathlib import Path

    import nadlib

    chapters = "".join(p.read_text() for p in (Path(__file__).resolve().parents[1] / "book").glob("*.ipynb"))
    unused = [name for name in nadlib.get_profile("default").budgets
              if f'profile.budget(\\"{name}\\")' not in chapters]
    assert not unused, f"budgets that no chapter uses: {unused}"
