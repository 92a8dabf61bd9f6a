"""A user's own model: checkpoints are keyed on what the model is (issue 21's silently wrong resumes)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import nadlib
from nadlib.models import describe_model, model_fingerprint

MODELS = textwrap.dedent('''
    import torch
    from torch import nn

    class StrideGAPNet(nn.Module):  # a 5x5 stride-2 stem and global average pooling
        def __init__(self, width=8, classes=1):
            super().__init__()
            self.stem = nn.Conv2d(1, width, 5, stride=2)
            self.head = nn.Linear(width, classes)

        def forward(self, x):
            return self.head(torch.relu(self.stem(x)).mean((2, 3)))

    class TinyMixer(nn.Module):  # 4x4 patches mixed by one linear layer
        def __init__(self, classes=1):
            super().__init__()
            self.patch = nn.Conv2d(1, 16, 4, stride=4)
            self.head = nn.Linear(16 * 64, classes)

        def forward(self, x):
            return self.head(torch.nn.functional.gelu(self.patch(x)).flatten(1))
''')


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    (tmp_path / "mymodels.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    sys.modules.pop("mymodels", None)
    yield importlib.import_module("mymodels"), tmp_path
    sys.modules.pop("mymodels", None)


def test_another_model_never_resumes_a_checkpoint(user_models, tmp_path):
    m, _ = user_models
    control = nadlib.RunControl(checkpoint=tmp_path / "ck.npz", progress=False)
    first = nadlib.estimate_nads(lambda: m.StrideGAPNet(), 8, "gradient", run=control)
    assert first.meta["resumed"] is False and first.meta["model"].startswith("test_another_model")
    with pytest.raises(ValueError, match="other settings"):
        nadlib.estimate_nads(lambda: m.TinyMixer(), 8, "gradient", run=control)


def test_the_same_model_in_a_new_process_resumes(user_models, tmp_path):
    _, folder = user_models
    script = textwrap.dedent(f'''
        import sys
        sys.path.insert(0, {str(folder)!r})
        import nadlib, mymodels
        def make():
            return mymodels.StrideGAPNet()
        r = nadlib.estimate_nads(make, 8, "gradient",
                                 run=nadlib.RunControl(checkpoint={str(tmp_path / "ck.npz")!r}, progress=False))
        print(r.meta["resumed"], r.meta["model"])
    ''')
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr
    (first, name1), (second, name2) = (r.stdout.split(maxsplit=1) for r in runs)
    assert (first, second) == ("False", "True") and name1 == name2
    assert name1.strip().startswith("make #") and "0x" not in name1


def test_an_edited_class_under_the_same_name_is_another_model():
    space_a, space_b = {}, {}
    exec(MODELS, space_a)
    exec(MODELS.replace("torch.relu(self.stem(x))", "torch.tanh(self.stem(x))"), space_b)
    a, b = space_a["StrideGAPNet"], space_b["StrideGAPNet"]
    assert a.__qualname__ == b.__qualname__
    assert model_fingerprint(a) != model_fingerprint(b)
    assert model_fingerprint(a) == model_fingerprint(a)  # and a model is itself, call after call


def test_other_arguments_are_another_model(user_models):
    m, _ = user_models
    assert model_fingerprint(lambda: m.StrideGAPNet(width=8)) != model_fingerprint(lambda: m.StrideGAPNet(width=16))
    assert describe_model("LeNet") == "lenet"  # a registered name is its own key


def test_trainability_checkpoints_do_not_hold_a_memory_address(user_models, tmp_path):
    m, _ = user_models

    def make():
        return m.StrideGAPNet(classes=2)
    u = torch.linalg.qr(torch.randn(1024, 2, generator=torch.Generator().manual_seed(0)))[0].T.reshape(2, 1, 32, 32)
    control = nadlib.RunControl(checkpoint=tmp_path / "t.npz", progress=False, device="cpu")
    recipe = nadlib.Recipe(n_train=16, n_test=16, epochs=1)
    first = nadlib.nad_trainability(u, [0], arch=make, recipe=recipe, run=control)
    again = nadlib.nad_trainability(u, [0], arch=make, recipe=recipe, run=control)  # resumed, not refused
    assert again["test_acc"].tolist() == first["test_acc"].tolist()
    _, meta = nadlib.load_artifact(tmp_path / "t.npz")
    assert meta["settings"]["arch"].startswith("test_trainability") and "0x" not in meta["settings"]["arch"]


def test_a_model_that_returns_no_module_is_named():
    with pytest.raises(TypeError, match="must return an nn.Module, got int"):
        model_fingerprint(lambda: 3)
    assert isinstance(model_fingerprint(lambda: nn.Linear(3, 1)), str)  # a probe it cannot take: still a key


def test_nads_compare_by_value_and_statistics_carry_a_description():
    kw = dict(n_networks=4, method="gradient", input_shape=(1, 2, 2))
    make = lambda: nn.Sequential(nn.Flatten(), nn.Linear(4, 1))  # noqa: E731
    a = nadlib.estimate_nads(make, run=nadlib.RunControl(progress=False), **kw)
    b = nadlib.estimate_nads(make, run=nadlib.RunControl(progress=False), **kw)
    c = nadlib.estimate_nads(make, run=nadlib.RunControl(seed=1, progress=False), **kw)
    assert a == b and a != c and (a == "lenet") is False  # no tensor-truthiness error
    stats = nadlib.nad_statistics(make, 0, 4, method="gradient", input_shape=(1, 2, 2))
    n = nadlib.nads_from_statistics(stats, (1, 2, 2), "gradient", k=2)
    assert n.meta == {"method": "gradient", "input_shape": [1, 2, 2], "n_networks": 4, "k": 2,
                      "source": "nads_from_statistics", "eigen_path": "eigh", "eigen_m": 4}


def test_the_outputs_a_task_needs_and_a_network_instance_are_named():
    v = nadlib.fourier_direction(1, 0)
    recipe = nadlib.Recipe(n_train=8, n_test=8, epochs=1)
    with pytest.raises(ValueError, match=r"only 1 outputs \(classes 0..0\): build it with 2 outputs, e\.g\. "
                                         r"num_classes=2 \(D\(v\) has 2 classes"):
        nadlib.direction_accuracy(lambda: nn.Sequential(nn.Flatten(), nn.Linear(1024, 1)), v, recipe=recipe,
                                  run=nadlib.RunControl(device="cpu"))
    with pytest.raises(TypeError, match=r"not a network instance: the network is initialised from the seed"):
        nadlib.direction_accuracy(nn.Sequential(nn.Flatten(), nn.Linear(1024, 2)), v, recipe=recipe,
                                  run=nadlib.RunControl(device="cpu"))


def test_the_readme_section_runs(tmp_path, monkeypatch, capsys):
    """The code of the README's "Your own model" section, executed as it is written."""
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("## Your own model", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert re.match(r"<lambda> #[0-9a-f]{16}: stability \d\.\d\d; D\(u_0\) \d\.\d\d; affinity \[", out), out
    assert (tmp_path / "stridegap.ckpt.npz").exists()


class _HeadFirst(nn.Module):
    """A model whose classifier is registered before another linear layer (a projection used inside)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 3)
        self.proj = nn.Linear(4, 8)

    def forward(self, x):
        return self.fc(torch.relu(self.proj(x.flatten(1))))


def test_the_collapse_tracker_takes_the_head_it_is_told():
    from nadlib.collapse import CollapseTracker, penultimate_layer
    model = _HeadFirst()
    assert penultimate_layer(model) is model.proj  # the last registered Linear: not the classifier here
    assert penultimate_layer(model, "fc") is model.fc
    x, y = torch.randn(12, 1, 2, 2), torch.arange(12) % 3
    tracker = CollapseTracker(model, x, y, head="fc")
    tracker(0, model)
    assert tracker.history()["epoch"].tolist() == [0]
    with pytest.raises(ValueError, match=r"has no module named 'head'; its linear layers: \['fc', 'proj'\]"):
        CollapseTracker(model, x, y, head="head")
    with pytest.raises(ValueError, match="is a ReLU, not an nn.Linear"):
        penultimate_layer(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), "1")


class _TinyTokens(nn.Module):
    """4x4 patches of a 32x32 image as 64 tokens of width 8, mixed by a GELU MLP: activations N x 64 x 8."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(1, 8, 4, stride=4)
        self.mlp = nn.Linear(8, 8)
        self.act = nn.GELU()

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)  # N x 64 x 8
        return self.act(self.mlp(t)).mean(1)


def test_token_activations_are_flattened_or_averaged_as_asked():
    model, x = _TinyTokens(), torch.randn(300, 1, 32, 32)
    quick = nadlib.RunControl(progress=False)
    with pytest.raises(ValueError, match="512 features but only 200 samples"):
        nadlib.nonlinearity_signature(model, x, n_samples=200, run=quick)  # 64 tokens x 8 = 512 features
    sig = nadlib.nonlinearity_signature(model, x, n_samples=300, tokens="mean", run=quick)  # all 300 inputs
    assert sig.dims == (8,) and sig.meta["tokens"] == "mean"
    # "mean" is the affinity score of the token-averaged activations, computed here by hand
    with torch.no_grad():
        pre = model.mlp(model.patch(x).flatten(2).transpose(1, 2))
    want = nadlib.affinity_score(pre.mean(1).double(), model.act(pre).mean(1).double())
    assert sig.rho[0] == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="tokens must be 'flatten' or 'mean'"):
        nadlib.nonlinearity_signature(model, x, tokens="max", run=quick)


def test_a_fourier_grid_of_your_own_model(user_models, tmp_path):
    """accuracy_grid takes a constructor: in this process for a lambda, in worker processes for an importable
    class (functools.partial of it, as the command line's 'module:Class' gives), with the same accuracies."""
    import functools
    m, _ = user_models
    recipe = nadlib.Recipe(n_train=64, n_test=64, epochs=1)
    quiet = nadlib.RunControl(progress=False, device="cpu")
    freqs = [(1, 0), (0, 3)]
    local = nadlib.accuracy_grid(lambda: m.StrideGAPNet(classes=2), freqs, recipe=recipe, run=quiet)
    assert local.arch.endswith("<lambda>") and set(local.accuracy) == set(freqs)
    with pytest.raises(ValueError, match="cannot be sent to worker processes"):
        nadlib.accuracy_grid(lambda: m.StrideGAPNet(classes=2), freqs, recipe=recipe, workers=2, run=quiet)
    make = functools.partial(m.StrideGAPNet, classes=2)
    pooled = nadlib.accuracy_grid(make, freqs, recipe=recipe, workers=2, run=quiet.replace(checkpoint=tmp_path / "g.npz"))
    assert pooled.accuracy == local.accuracy and pooled.arch == "partial(StrideGAPNet)"


def test_a_model_spec_from_the_command_line(user_models):
    from nadlib.models import model_from_spec
    make = model_from_spec("mymodels:StrideGAPNet", {"width": 4}, num_classes=2)
    net = make()
    assert net.stem.out_channels == 4 and net.head.out_features == 1  # `classes`, not num_classes: not set
    assert model_from_spec("LeNet") == "lenet"
    for spec, message in (("mymodels:Nope", "has no 'Nope'"), ("nomodule:X", "cannot import 'nomodule'"),
                          ("alexnet", "unknown architecture")):
        with pytest.raises(ValueError, match=message):
            model_from_spec(spec)


def test_the_command_line_takes_your_model(user_models, tmp_path, monkeypatch, capsys):
    """`--arch mymodels:Class --arch-kwargs JSON` for grid, nads and trainability, from the model's folder."""
    from nadlib.cli import main
    _, folder = user_models
    monkeypatch.chdir(folder)
    common = ["--device", "cpu", "--arch", "mymodels:StrideGAPNet", "--arch-kwargs"]
    assert main(["grid", *common, '{"width": 4, "classes": 2}', "--freqs", "1,0;0,2", "--n-train", "64", "--n-test", "64", "--epochs", "1",
                 "--workers", "1", "--profile", "smoke", "--out", str(tmp_path / "g.npz")]) == 0
    grid = nadlib.GridResult.from_artifact(tmp_path / "g.npz")
    assert grid.arch == "partial(StrideGAPNet)" and len(grid.accuracy) == 2
    assert main(["nads", *common, '{"width": 4}', "--method", "gradient", "--networks", "8", "--quiet",
                 "--out", str(tmp_path / "n.npz")]) == 0
    nads = nadlib.load_nads(tmp_path / "n.npz")
    assert nads.meta["model"].startswith("partial(StrideGAPNet) #")
    args = ["trainability", "--nads", str(tmp_path / "n.npz"), "--indices", "0", "--n-train", "32", "--n-test",
            "32", "--epochs", "1", "--device", "cpu", "--profile", "smoke"]
    assert main([*args, "--out", str(tmp_path / "t.npz")]) == 2  # a user's NADs: which network to train?
    assert main([*args, "--arch", "mymodels:StrideGAPNet", "--arch-kwargs", '{"classes": 2}',
                 "--out", str(tmp_path / "t.npz")]) == 0
    assert nadlib.load_artifact(tmp_path / "t.npz")[1]["arch"].startswith("partial(StrideGAPNet) #")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["grid", "--arch", "alexnet", "--out", str(tmp_path / "x.npz")])
    assert "a registered name" in capsys.readouterr().err


COLOUR_MODELS = textwrap.dedent('''
    import torch
    from torch import nn

    class ColourGAP(nn.Module):  # CIFAR-10 images: 3 channels in, num_classes out, its classifier named "out"
        def __init__(self, num_classes=10, width=4):
            super().__init__()
            self.stem = nn.Conv2d(3, width, 5, stride=2)
            self.act = nn.ReLU()
            self.out = nn.Linear(width, num_classes)

        def forward(self, x):
            return self.out(self.act(self.stem(x)).mean((2, 3)))
''')


def test_the_cifar_signature_and_collapse_commands_take_your_model(tmp_path, monkeypatch, capsys):
    """poison, flip, signature and collapse with `--arch mymodels:Class` (num_classes set by each command, 10 or 2);
    the artifacts name the model by spec and fingerprint, and a mistyped class is refused before any work."""
    from nadlib.cli import main
    (tmp_path / "colour.py").write_text(COLOUR_MODELS)
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("colour", None)
    sizes = ["--n-train", "60", "--n-test", "30", "--epochs", "1", "--device", "cpu", "--profile", "smoke"]
    mine = ["--arch", "colour:ColourGAP", "--arch-kwargs", '{"width": 3}']
    cifar = [*mine, "--nads", "fourier", "--synthetic", *sizes]
    assert main(["poison", *cifar, "--indices", "0", "--out", str(tmp_path / "p.npz")]) == 0
    assert main(["flip", *cifar, "--out", str(tmp_path / "f.npz")]) == 0
    for name in ("p", "f"):
        settings = nadlib.load_artifact(tmp_path / f"{name}.npz")[1]["settings"]
        assert re.fullmatch(r"partial\(ColourGAP\) #[0-9a-f]{16}", settings["arch"]), settings["arch"]
    assert main(["signature", "--archs", "colour:ColourGAP", "lenet", "--arch-kwargs", '{"width": 3}', "--seeds", "1",
                 "--n-samples", "130", "--synthetic", "--profile", "smoke", "--device", "cpu",
                 "--out", str(tmp_path / "s.npz")]) == 0
    sigs, meta = nadlib.load_signatures(tmp_path / "s.npz")
    assert list(sigs) == ["ColourGAP", "lenet"] and len(sigs["ColourGAP"][0].rho) == 1  # one ReLU
    assert meta["models"]["ColourGAP"].startswith("partial(ColourGAP) #") and meta["models"]["lenet"] == "lenet"
    assert main(["collapse", *mine, "--head", "out", "--synthetic", *sizes, "--out", str(tmp_path / "c.npz")]) == 0
    meta = nadlib.load_artifact(tmp_path / "c.npz")[1]
    assert meta["arch"].startswith("partial(ColourGAP) #") and meta["head"] == "out" and meta["num_classes"] == 10
    capsys.readouterr()
    for extra, error in ((["--head", "stem", "--synthetic"], "is a Conv2d, not an nn.Linear"),
                         (["--freq", "1", "0"], "does not accept x_train of shape (N, 1, 32, 32)")):  # D(v): 1 channel
        assert main(["collapse", *mine, *extra, *sizes, "--out", str(tmp_path / "x.npz")]) == 2
        assert error in capsys.readouterr().err and not (tmp_path / "x.npz").exists()
    for command in (["signature", "--archs", "colour:Nope"], ["poison", "--arch", "colour:Nope", "--nads", "fourier"]):
        assert main([*command, "--synthetic", "--out", str(tmp_path / "y.npz")]) == 2
        assert "has no 'Nope'" in capsys.readouterr().err


def test_signatures_of_your_models_are_labelled_and_keyed_on_what_they_are(tmp_path):
    from nadlib.signature_runs import run_signatures
    x = torch.randn(130, 1, 32, 32)  # more samples than LeNet's widest layer (120)
    quick = dict(n_samples=130, init_seeds=[0], run=nadlib.RunControl(progress=False, checkpoint=tmp_path / "c.npz"))
    make = lambda: nn.Sequential(nn.Flatten(), nn.Linear(1024, 16), nn.ReLU(), nn.Linear(16, 10))  # noqa: E731
    out = run_signatures({"mlp": make, "lenet": "LeNet"}, x, **quick)
    assert list(out) == ["mlp", "lenet"] and len(out["mlp"][0].rho) == 1
    for archs, error in (([make], r"model label '.*<lambda>' must be letters"), ({"a__b": make}, "model label 'a__b'"),
                         ({"net": nn.Linear(2, 2)}, "got Linear"), (["alexnet"], "unknown architecture")):
        with pytest.raises((ValueError, TypeError), match=error):
            run_signatures(archs, x, **quick)


def test_the_stability_of_nads_is_what_they_hold():
    """Issue 21: split_half_stability(nads) needed statistics a NADs object does not keep."""
    nads = nadlib.estimate_nads(lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 4), nn.Tanh(), nn.Linear(4, 1)),
                                8, "gradient", input_shape=(1, 4, 4), run=nadlib.RunControl(progress=False))
    assert nadlib.split_half_stability(nads, (1, 5)) == {1: nads.stability[1], 5: nads.stability[5]}
    with pytest.raises(ValueError, match=r"hold their split-half stability for k in \[1, 5, 10\] only, not \[3\]"):
        nadlib.split_half_stability(nads, (3,))
    with pytest.raises(TypeError, match="takes NADStatistics"):
        nadlib.split_half_stability(torch.eye(4))
