"""RunControl: how a long computation runs travels as one object, and the public API stays small."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import time

import pytest
import torch

import nadlib
from nadlib.control import RunControl, as_run

#: The long computations of the library: each takes ``run=`` and none threads the five settings by hand.
RUNS = ["estimate_nads", "nad_statistics", "train", "direction_accuracy", "accuracy_grid", "nad_trainability",
        "run_poison_sweep", "run_flip", "run_collapse", "run_signatures", "run_pooling_ablation",
        "nonlinearity_signature", "distributed.ray_accuracy_grid", "distributed.ray_estimate_nads",
        "recipe_sweep.recipe_sweep", "paper_run.run_paper"]
#: At most this many parameters in a public function (``*args``/``**kwargs`` not counted).
MAX_PARAMETERS = 10


def _public_functions():
    """Every public function of every module of nadlib, sub-packages included, under the module that defines it."""
    for info in pkgutil.walk_packages(nadlib.__path__, prefix="nadlib."):
        if info.name.endswith("__main__") or any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        for name, f in vars(module).items():
            if not name.startswith("_") and inspect.isfunction(f) and f.__module__ == module.__name__:
                yield f"{info.name.removeprefix('nadlib.')}.{name}", f


def _resolve(name: str):
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(f"nadlib.{module}") if module else nadlib, attr)


def test_defaults():
    run = RunControl()
    assert (run.seed, run.device, run.progress, run.checkpoint, run.deadline, run.tf32) == (0, None, None, None,
                                                                                            None, False)
    assert as_run(None) == run and as_run(run) is run
    assert run.shows_progress(True) is True and run.shows_progress(False) is False
    assert RunControl(progress=False).shows_progress(True) is False
    assert run.torch_device() == nadlib.get_device() and run.checkpoint_path() is None
    assert not run.past_deadline() and RunControl(deadline=time.monotonic() - 1).past_deadline()


def test_replace_changes_only_what_it_names(tmp_path):
    run = RunControl(seed=3, device="cpu", checkpoint=tmp_path / "c.npz")
    inner = run.replace(progress=False, checkpoint=None)
    assert (inner.seed, inner.device, inner.progress, inner.checkpoint) == (3, "cpu", False, None)
    assert run.checkpoint_path() == tmp_path / "c.npz" and run.progress is None  # frozen: the original is kept
    with pytest.raises(Exception):
        run.seed = 4


@pytest.mark.parametrize("kwargs, err, message", [
    (dict(seed=-1), ValueError, "seed must be in [0, 2**63 - 1], got -1"),
    (dict(seed=1.5), TypeError, "seed must be an int, got float 1.5"),
    (dict(device=3), ValueError, "device must be None, a string like 'cpu'/'cuda' or a torch.device, got 3"),
    (dict(progress="yes"), ValueError, "progress must be None, True/False or a callable, got 'yes'"),
    (dict(checkpoint=3), ValueError, "checkpoint must be None or a path, got 3"),
    (dict(deadline=float("nan")), ValueError, "deadline must be None or a time.monotonic() value (float), got nan"),
    (dict(deadline=True), ValueError, "deadline must be None or a time.monotonic() value (float), got True"),
    (dict(checkpoint_every=0), ValueError, "checkpoint_every must be a positive finite number, got 0"),
    (dict(tf32=1), ValueError, "tf32 must be True or False, got 1"),
])
def test_bad_fields_are_refused_when_the_object_is_made(kwargs, err, message):
    with pytest.raises(err) as info:
        RunControl(**kwargs)
    assert str(info.value) == message


def test_a_run_that_is_not_a_run_control_is_named():
    with pytest.raises(TypeError, match=r"^run must be a nadlib.RunControl .*got dict: \{'seed': 1\}"):
        nadlib.train(torch.nn.Linear(1, 2), torch.zeros(2, 1), torch.tensor([0, 1]), run={"seed": 1})


def test_a_recipe_that_is_not_a_recipe_is_named():
    with pytest.raises(TypeError, match=r"^recipe must be a nadlib.Recipe, got dict"):
        nadlib.direction_accuracy("logreg", nadlib.fourier_direction(1, 0), recipe={"epochs": 1})


@pytest.mark.parametrize("name", RUNS)
def test_every_long_computation_takes_run_and_nothing_it_holds(name):
    params = inspect.signature(_resolve(name)).parameters
    assert "run" in params and params["run"].default is None and params["run"].kind is inspect.Parameter.KEYWORD_ONLY
    threaded = {"seed", "device", "device_type", "progress", "checkpoint", "deadline", "tf32", "checkpoint_every"}
    assert not threaded & set(params), f"{name} takes {sorted(threaded & set(params))} beside run="


def test_no_public_function_threads_progress_checkpoint_or_deadline():
    """Only the RunControl module itself and the live-budget runner (whose budget is its own deadline) name
    them; everything else gets them from ``run``."""
    found = [f"{name}({', '.join(sorted(set(inspect.signature(f).parameters) & {'progress', 'checkpoint', 'deadline'}))})"
             for name, f in _public_functions()
             if not name.startswith(("control.", "budget."))
             and set(inspect.signature(f).parameters) & {"progress", "checkpoint", "deadline"}]
    assert not found, found


def test_the_checks_see_the_sub_packages():
    names = {name for name, _ in _public_functions()}
    assert {"nads.estimate.estimate_nads", "book.plotting.plot_nads", "training.train"} <= names


def test_no_public_function_has_more_than_ten_parameters():
    counted = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    over = {name: n for name, f in _public_functions()
            if (n := sum(p.kind not in counted for p in inspect.signature(f).parameters.values())) > MAX_PARAMETERS}
    assert not over, f"public functions over {MAX_PARAMETERS} parameters: {over}"


def test_the_seed_of_the_run_control_fixes_the_run():
    v = nadlib.fourier_direction(1, 0)
    recipe = nadlib.Recipe(n_train=64, n_test=32, epochs=1)

    def loss(seed):
        return nadlib.direction_accuracy("logreg", v, recipe=recipe, return_history=True,
                                         run=RunControl(seed=seed, device="cpu")).loss
    assert loss(5) == loss(5) and loss(5) != loss(6)


@pytest.mark.parametrize("where, message", [
    ("ck.txt", "checkpoint must be a .npz file, got 'ck.txt'"),
    ("{tmp}/folder.npz", "checkpoint '{tmp}/folder.npz' is a folder; give a .npz file name"),
    ("{tmp}/a_file/ck.npz", "checkpoint '{tmp}/a_file/ck.npz' cannot be written: '{tmp}/a_file' is a file, not a folder"),
])
def test_a_checkpoint_that_cannot_be_written_is_refused_before_any_work(tmp_path, where, message):
    (tmp_path / "a_file").write_text("")
    (tmp_path / "folder.npz").mkdir()
    with pytest.raises(ValueError) as info:
        RunControl(checkpoint=where.format(tmp=tmp_path))
    assert str(info.value) == message.format(tmp=tmp_path)
    RunControl(checkpoint=tmp_path / "new" / "folder" / "ck.npz")  # folders that do not exist yet are made


def test_the_command_line_checks_its_output_and_device_before_any_work(tmp_path, capsys):
    from nadlib.cli import main
    (tmp_path / "a_file").write_text("")
    (tmp_path / "folder.npz").mkdir()
    for out, message in ((tmp_path / "folder.npz", "is a folder"), (tmp_path / "a_file" / "x.npz", "is a file, not a folder"),
                         (tmp_path / "x.txt", "must be a .npz file")):
        with pytest.raises(SystemExit) as stop:
            main(["nads", "--arch", "logreg", "--out", str(out)])
        assert stop.value.code == 2 and message in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as stop:
            main(["nads", "--arch", "logreg", "--device", "cuda", "--out", str(tmp_path / "n.npz")])
        err = capsys.readouterr().err  # the advice in the command line's words, not the API's device='cpu'
        assert stop.value.code == 2 and "CUDA is not available on this machine" in err and "--device cpu" in err
    assert [p.name for p in tmp_path.glob("*.npz")] == ["folder.npz"]  # nothing written
