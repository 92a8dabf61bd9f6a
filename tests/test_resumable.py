"""``ResumableRuns``: the one runner behind trainability, poisoning and the flip (resume, refusal, deadline,
progress bar), on a toy ``work`` function whose calls are recorded."""

import re
import time

import numpy as np
import pytest

from nadlib.experiments import ResumableRuns
from nadlib.results import DeadlineReached

SETTINGS = {"what": "toy"}


def _work(calls):
    def work(key):
        calls.append(key)
        return {"value": float(ord(key)), "pair": [ord(key), 2 * ord(key)]}
    return work


def _expected(key):
    return {"value": np.asarray(float(ord(key))), "pair": np.asarray([ord(key), 2 * ord(key)])}


def _same(results, keys):
    assert list(results) == list(keys)
    for key in keys:
        assert set(results[key]) == {"value", "pair"}
        for name, want in _expected(key).items():
            np.testing.assert_array_equal(results[key][name], want)


def test_a_resumed_run_does_only_the_missing_keys_wherever_they_are(tmp_path):
    ckpt = tmp_path / "runs.ckpt.npz"
    first = []
    ResumableRuns(ckpt, SETTINGS).run(["b"], _work(first), progress=False)
    assert first == ["b"]

    runs = ResumableRuns(ckpt, SETTINGS)
    assert runs.resumed and set(runs.done) == {"b"}
    calls = []
    results = runs.run(["a", "b", "c", "d"], _work(calls), progress=False)
    # the stored key in the middle is skipped, the ones after it still run
    assert calls == ["a", "c", "d"]
    _same(results, ["a", "b", "c", "d"])
    # ... and everything is in the checkpoint now: a third call does no work
    calls = []
    _same(ResumableRuns(ckpt, SETTINGS).run(["a", "b", "c", "d"], _work(calls), progress=False),
          ["a", "b", "c", "d"])
    assert calls == []


def test_without_a_checkpoint_nothing_is_resumed():
    runs = ResumableRuns(None, SETTINGS)
    assert runs.store is None and not runs.resumed
    calls = []
    _same(runs.run("xy", _work(calls), progress=False), ["x", "y"])
    assert calls == ["x", "y"]


def test_a_checkpoint_with_runs_this_call_does_not_ask_for_is_refused(tmp_path):
    ckpt = tmp_path / "runs.ckpt.npz"
    ResumableRuns(ckpt, SETTINGS).run(["a", "z"], _work([]), progress=False)
    calls = []
    message = ("the checkpoint holds runs ['z'] that this call does not ask for; use the same settings "
               "as the interrupted run, or delete the checkpoint")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ResumableRuns(ckpt, SETTINGS).run(["a", "b"], _work(calls), progress=False)
    assert calls == []  # refused before any work


@pytest.mark.parametrize("with_checkpoint", [True, False])
def test_a_deadline_stops_after_the_run_that_passes_it(tmp_path, with_checkpoint):
    ckpt = tmp_path / "runs.ckpt.npz" if with_checkpoint else None
    calls = []
    # a deadline already past: the first run still finishes, then the runner stops and says how far it got
    with pytest.raises(DeadlineReached) as err:
        ResumableRuns(ckpt, SETTINGS).run("abc", _work(calls), progress=False, desc="toys",
                                          deadline=time.monotonic() - 1)
    assert calls == ["a"]
    assert (err.value.what, err.value.done, err.value.total) == ("toys: runs", 1, 3)
    assert err.value.checkpoint == ckpt
    if with_checkpoint:  # the finished run was saved: the same call goes on from "b"
        calls = []
        _same(ResumableRuns(ckpt, SETTINGS).run("abc", _work(calls), progress=False), list("abc"))
        assert calls == ["b", "c"]


def test_a_deadline_reached_by_the_last_run_is_not_an_interruption():
    calls = []
    # one key left: it runs and the call returns normally, however late it is
    _same(ResumableRuns(None, SETTINGS).run("a", _work(calls), progress=False, deadline=time.monotonic() - 1),
          ["a"])
    assert calls == ["a"]


def test_the_progress_bar_is_on_by_default_and_names_the_runs(capsys):
    ResumableRuns(None, SETTINGS).run("ab", _work([]), desc="toy sweep", label=lambda k: f"<{k}>")
    err = capsys.readouterr().err
    assert "toy sweep" in err and "2/2" in err
    assert re.search(r"\brun/s\b|\bs/run\b", err), err  # the unit is one run
    assert "run=<b>" in err  # the current run, through its label

    ResumableRuns(None, SETTINGS).run("ab", _work([]), desc="toy sweep")
    assert "run=b" in capsys.readouterr().err  # without a label: the key itself

    ResumableRuns(None, SETTINGS).run("ab", _work([]), progress=False)
    assert capsys.readouterr().err == ""


def test_keys_holding_the_checkpoint_separator_are_refused_before_any_work(tmp_path):
    calls = []
    with pytest.raises(ValueError) as info:
        ResumableRuns(tmp_path / "r.ckpt.npz", SETTINGS).run(["a", "b__c"], _work(calls), progress=False)
    assert str(info.value) == ("run keys must not contain '__' (it separates a key from a field in the "
                               "checkpoint), got ['b__c']")
    assert calls == []


def test_the_default_bar_title_is_runs(capsys):
    ResumableRuns(None, SETTINGS).run("a", _work([]))
    assert capsys.readouterr().err.startswith("\rruns:")
