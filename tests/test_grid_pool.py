"""The grid's worker-process runner (`_run_pool` and its helpers), fast.

The real pool spawns a fresh Python with torch per worker (~10 s each); those end-to-end tests (same
accuracies as in-process, a killed worker, an interrupted pool) run in `make test` only.  Here the workers
are *forked* (`POOL_START = "fork"`) and train nothing: `_grid_task` is replaced by a function that returns
a number made from its arguments, dies, or sleeps.  So every line of the runner runs in well under a second,
also in the mutation selection.
"""
from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor, wait

import pytest
import torch

import nadlib.grid as G
from nadlib import RunControl
from nadlib.models import LeNet

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forked workers need os.fork")

SETTINGS = {"seed": 3, "epochs": 2}


def _fake_accuracy(arch, freq, size, settings, device):
    """A number that changes with every argument the runner hands a worker."""
    assert (arch, device) == ("lenet", "cpu"), (arch, device)
    return freq[0] / 10 + freq[1] / 100 + size / 1000 + settings["seed"] / 10_000


def _logging_pid(pids, *args):
    """`_fake_accuracy`, after appending the worker's process id to the file ``pids``."""
    with open(pids, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    return _fake_accuracy(*args)


class Bar:
    def __init__(self):
        self.n = 0

    def update(self, k):
        self.n += k


@pytest.fixture
def forked(monkeypatch):
    """Forked workers; afterwards no worker process may be left, and none is left running for the next test."""
    monkeypatch.setattr(G, "POOL_START", "fork")
    yield
    alive = _wait_for_children()
    for p in alive:
        p.kill()
        p.join()
    assert alive == [], f"worker processes left running: {alive}"


def _wait_for_children(seconds=10.0):
    """The child processes still running after up to ``seconds`` (the executor's own thread may be reaping a
    terminated worker at the same moment, so a first look can see it still 'started')."""
    deadline = time.monotonic() + seconds
    while (alive := multiprocessing.active_children()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def _pool(todo, task, monkeypatch, *, workers=2, checkpoint=None, record=None):
    monkeypatch.setattr(G, "_grid_task", task)
    calls, bar = [], Bar()
    G._run_pool("lenet", todo, 8, SETTINGS, torch.device("cpu"),
                record or (lambda f, a: calls.append((list(f), list(a)))), bar, workers, checkpoint)
    return calls, bar


def test_pool_records_each_direction_once_with_its_own_accuracy(forked, monkeypatch, tmp_path):
    """Every direction is run once in a worker process (not this one), with the arch, size, settings and device
    of the call, recorded one at a time, and counted once on the bar."""
    pids = tmp_path / "pids"
    task = functools.partial(_logging_pid, pids)

    todo = [(1, 0), (2, 3), (0, 5), (4, 1), (3, 3)]
    calls, bar = _pool(todo, task, monkeypatch, workers=2)
    assert all(len(f) == 1 and len(a) == 1 for f, a in calls)
    got = {f[0]: a[0] for f, a in calls}
    assert len(calls) == len(todo) and sorted(got) == sorted(todo)
    assert got == {f: _fake_accuracy("lenet", f, 8, SETTINGS, "cpu") for f in todo}
    assert bar.n == len(todo)
    workers = {int(p) for p in pids.read_text().split()}
    assert len(workers) in (1, 2) and os.getpid() not in workers


def test_pool_workers_start_as_pool_start_says_and_are_initialised(forked, monkeypatch):
    """The workers start by `POOL_START` (spawn by default; forked here), ignore Ctrl-C (the main process stops
    them) and run torch on one thread."""
    assert G.POOL_START == "fork"
    starts = []
    monkeypatch.setattr(G, "get_context", lambda method: starts.append(method) or multiprocessing.get_context(method))

    def task(arch, freq, *rest):
        return float(signal.getsignal(signal.SIGINT) is signal.SIG_IGN and torch.get_num_threads() == 1)

    calls, _ = _pool([(1, 0), (2, 0)], task, monkeypatch)
    assert starts == ["fork"] and sorted(a for _, (a,) in calls) == [1.0, 1.0]


def test_pool_of_one_worker_runs_every_direction_in_the_same_process(forked, monkeypatch, tmp_path):
    pids = tmp_path / "pids"
    task = functools.partial(_logging_pid, pids)

    calls, _ = _pool([(1, 0), (2, 0), (3, 0)], task, monkeypatch, workers=1)
    assert len(calls) == 3 and len(set(pids.read_text().split())) == 1


def test_a_dead_worker_stops_the_pool_keeps_the_finished_and_names_the_lost(forked, monkeypatch, tmp_path):
    """A worker that dies breaks the pool: `WorkerDied` names exactly the directions not recorded (the dead one
    among them, sorted); every direction is either recorded or named lost, none twice; the message says where
    the finished ones are, or how to keep them."""
    def task(arch, freq, *rest):
        if freq == (3, 0):
            time.sleep(0.2)  # let some directions finish first
            os._exit(7)
        return _fake_accuracy(arch, freq, *rest)

    todo = [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0)]
    for checkpoint, where in ((tmp_path / "g.npz", r"the finished directions are in '.*g\.npz': run the same call"),
                              (None, "pass a checkpoint to keep finished directions")):
        calls = []
        with pytest.raises(G.WorkerDied, match=rf"grid worker process died .* before finishing \d+ direction\(s\) "
                                               rf"\[.*\]; {where}") as died:
            _pool(todo, task, monkeypatch, checkpoint=checkpoint,
                  record=lambda f, a: calls.append((list(f), list(a))))
        recorded = [f for fs, _ in calls for f in fs]
        lost = died.value.lost
        assert (3, 0) in lost and lost == sorted(lost)
        assert sorted(recorded + lost) == todo and len(set(recorded)) == len(recorded)
        assert all(a == [_fake_accuracy("lenet", f, 8, SETTINGS, "cpu") for f in fs] for fs, a in calls)
        assert isinstance(died.value, G.RunStopped) and died.value.__cause__ is None
        multiprocessing.active_children()  # reap


def test_directions_finished_before_the_pool_broke_are_all_recorded(forked, monkeypatch):
    """Directions that finished before a worker died are recorded even when recording is slow (the pool breaks
    while they wait to be taken), each with its accuracy and counted on the bar; only the dead one is lost."""
    def task(arch, freq, *rest):
        if freq == (9, 9):
            time.sleep(0.5)  # the others finish first, then this worker dies
            os._exit(7)
        return _fake_accuracy(arch, freq, *rest)

    todo = [(9, 9), (1, 0), (2, 0), (3, 0)]
    calls = []

    def slow_record(f, a):
        calls.append((list(f), list(a)))
        if len(calls) == 1:
            time.sleep(1.5)

    monkeypatch.setattr(G, "_grid_task", task)
    bar = Bar()
    with pytest.raises(G.WorkerDied) as died:
        G._run_pool("lenet", todo, 8, SETTINGS, torch.device("cpu"), slow_record, bar, 2)
    assert died.value.lost == [(9, 9)]
    assert sorted(f for fs, _ in calls for f in fs) == sorted(todo[1:])
    assert all(a == [_fake_accuracy("lenet", f, 8, SETTINGS, "cpu") for f in fs] for fs, a in calls)
    assert bar.n == 3


def test_an_interruption_terminates_the_workers_at_once(forked, monkeypatch):
    """Ctrl-C (or any error) while recording: the exception reaches the caller unchanged and the workers, still
    busy with long directions, are terminated rather than waited for (the fixture checks none is left)."""
    def task(arch, freq, *rest):
        if freq != (1, 0):
            time.sleep(60)
        return 0.5

    def record(f, a):
        raise KeyboardInterrupt

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        _pool([(1, 0), (2, 0), (3, 0)], task, monkeypatch, record=record)
    assert time.monotonic() - start < 30


def test_an_error_in_a_direction_reaches_the_caller_and_stops_the_workers(forked, monkeypatch):
    def task(arch, freq, *rest):
        if freq == (2, 0):
            raise ValueError("bad direction (2, 0)")
        time.sleep(60)

    with pytest.raises(ValueError, match=r"bad direction \(2, 0\)"):
        _pool([(1, 0), (2, 0), (3, 0)], task, monkeypatch)


def test_stop_workers_terminates_the_processes_and_shuts_the_executor(forked):
    ex = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
    futures = [ex.submit(time.sleep, 60) for _ in range(3)]
    deadline = time.monotonic() + 10
    while len(ex._processes) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    procs = list(ex._processes.values())
    G._stop_workers(ex)
    assert _wait_for_children() == []
    assert len(procs) == 2 and all(p.exitcode == -signal.SIGTERM for p in procs)
    wait(futures, timeout=1)
    assert all(f.done() for f in futures)  # cancelled or broken: none is left waiting for a worker
    assert not any(not f.cancelled() and f.exception() is None for f in futures)
    with pytest.raises(RuntimeError):  # broken, and shut down: no new work
        ex.submit(time.sleep, 0)


def test_grid_job_unpacks_a_job_and_returns_its_frequency_with_the_accuracy(monkeypatch):
    """What a worker runs, called here in this process (mutmut cannot see calls inside forked workers)."""
    monkeypatch.setattr(G, "_grid_task", _fake_accuracy)
    assert G._grid_job(("lenet", (3, 1), 8, SETTINGS, "cpu")) == ((3, 1), _fake_accuracy("lenet", (3, 1), 8, SETTINGS, "cpu"))


def test_worker_died_names_at_most_six_lost_directions():
    six = [(k, 0) for k in range(6, 0, -1)]
    assert str(G.WorkerDied(six)).endswith(
        "before finishing 6 direction(s) [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0)]; pass a checkpoint to keep "
        "finished directions across such a failure")
    seven = G.WorkerDied(six + [(7, 0)], "g.npz")
    assert seven.lost == sorted(six + [(7, 0)])
    assert str(seven) == ("a grid worker process died (killed, or out of memory?) before finishing 7 direction(s) "
                          "[(1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0)] ...; the finished directions are in "
                          "'g.npz': run the same call again to train the rest")


def test_init_worker_ignores_ctrl_c_and_sets_the_thread_count():
    handler, threads = signal.getsignal(signal.SIGINT), torch.get_num_threads()
    try:
        G._init_worker(1)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and torch.get_num_threads() == 1
    finally:
        signal.signal(signal.SIGINT, handler)
        torch.set_num_threads(threads)


def _module_level_net():
    return LeNet()


def test_picklable_tells_what_worker_processes_can_receive():
    class Local:
        pass

    class Unreducible:
        def __reduce__(self):
            raise TypeError("no")

    assert G._picklable("lenet") and G._picklable(_module_level_net) and G._picklable(functools.partial(LeNet))
    assert not G._picklable(lambda: LeNet()) and not G._picklable(Local) and not G._picklable(Unreducible())


def test_accuracy_grid_sends_directions_to_one_worker_per_core_at_most_one_per_direction(monkeypatch):
    """The worker count: one per core by default (CPU, picklable arch), never more than the directions, at least
    1; with one worker (or a lambda) the directions run in this process; an explicit count above 1 for a lambda
    is refused before any work."""
    pools, serial = [], []

    def runner(calls):
        def run(*a):  # record every direction (and count it on the bar) as the real runners do
            calls.append(a)
            for f in a[1]:
                a[5]([f], [0.5])
                a[6].update(1)
        return run

    monkeypatch.setattr(G, "_run_pool", runner(pools))
    monkeypatch.setattr(G, "_run_serial", runner(serial))
    run = RunControl(progress=False, device="cpu", seed=4)
    freqs = [(1, 0), (2, 0), (3, 0)]
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    G.accuracy_grid("lenet", freqs, size=8, run=run)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    G.accuracy_grid("lenet", freqs, size=8, run=run)
    G.accuracy_grid("lenet", freqs, size=8, workers=5, run=run)
    assert [p[-2] for p in pools] == [3, 2, 3] and serial == []
    arch, todo, size, settings, device, _, _, workers, checkpoint = pools[0]
    assert (arch, todo, size, device, checkpoint) == ("lenet", freqs, 8, torch.device("cpu"), None)
    assert settings["seed"] == 4
    G.accuracy_grid(lambda: LeNet(), freqs, size=8, run=run)  # cannot be sent to a worker: in this process
    G.accuracy_grid("lenet", [(1, 0)], size=8, workers=4, run=run)  # one direction: one worker
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: one worker
    G.accuracy_grid("lenet", freqs, size=8, run=run)
    assert len(pools) == 3 and len(serial) == 3
    with pytest.raises(ValueError, match=r"<lambda> cannot be sent to worker processes \(a lambda or a local "
                                         r"function\): define it at module level, or pass workers=1$"):
        G.accuracy_grid(lambda: LeNet(), freqs, size=8, workers=2, run=run)
    assert len(pools) == 3 and len(serial) == 3


def test_accuracy_grid_hands_the_pool_its_checkpoint(monkeypatch, tmp_path):
    pools = []
    monkeypatch.setattr(G, "_run_pool", lambda *a: pools.append(a) or [a[5]([f], [0.5]) for f in a[1]])
    ckpt = tmp_path / "g.npz"
    G.accuracy_grid("lenet", [(1, 0), (2, 0)], size=8, workers=2,
                    run=RunControl(progress=False, device="cpu", checkpoint=ckpt))
    assert pools[0][-1] == ckpt and pools[0][-2] == 2
