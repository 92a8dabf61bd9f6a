"""The authors' released code as an oracle: their code and nadlib side by side on the same tasks.

    python benchmarks/authors_oracle.py --authors-code DIR [--seeds 0,1] [--networks 256] [--out FILE]

DIR is a checkout of the authors' repository (https://github.com/LTS4/neural-anisotropy-directions,
Apache-2.0).  Their code is imported from DIR and run unchanged; nothing of it is copied into nadlib.  The
only accommodations, recorded in the artifact, are runtime ones: NumPy's ``np.long`` alias (removed in NumPy
1.24, used by their ``DirectionalLinearDataset``) is set to ``np.int64`` before their modules are imported,
their ``utils.DEVICE`` is set to the device of the run, and their training log is not printed.  It needs
scikit-learn (their NAD estimator uses its PCA).

What it measures, for LeNet:

* **D(v) trainability**: test accuracy of their ``utils.train`` + ``DirectionalLinearDataset`` + ``LeNet``
  (sigma 3, epsilon 1, 20 epochs, max_lr 0.5, clipping 0.5, batches of 128: their ``directional_bias.py``)
  and of :func:`nadlib.direction_accuracy` with :data:`nadlib.PAPER_RECIPE`, on the same directions and
  seeds, beside the published value: Fourier directions spanning the published map (low, middle and high
  frequency, both axes, the diagonal) and the authors' published LeNet NADs u_0, u_10, u_100, u_400.
  Their test set has ``num_train`` samples (their ``generate_synthetic_data`` passes ``num_train`` for both).
* **Secant NADs**: their ``GradientCovarianceAnisotropyFinder`` (scale 100) and :func:`nadlib.estimate_nads`
  on the same number of networks: the top-1/5/10 subspace overlap of the two estimates, the same overlap
  between two nadlib estimates of other seeds (what sampling alone leaves), and networks per second.

Writes an artifact with provenance (their commit when DIR is a git checkout, the accommodations, sizes,
times); ``nadlib.results.load("lenet/authors-oracle")`` reads it and Chapters 1 and 2 cite it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

import nadlib
from nadlib import PAPER_RECIPE, RunControl
from nadlib.directions import mirror
from nadlib.paper import paper_fourier_accuracy, published_trainability

#: What the script imports or reads from the authors' checkout.
REQUIRED = ("directional_bias.py", "utils.py", "models.py", "nad_computation.py", "NADs/LeNet_NADs.npy")
#: Fourier directions spanning the published map: low / middle / high frequency, both axes, the diagonal.
FOURIER = ((2, 0), (0, 2), (4, 4), (8, 0), (0, 8), (8, 8), (14, 0), (0, 14))
#: Indices of the authors' published LeNet NADs trained on.
NAD_INDICES = (0, 10, 100, 400)
#: The runtime accommodations (recorded in the artifact).
ACCOMMODATIONS = ("numpy.long = numpy.int64 before import (alias removed in NumPy 1.24)",
                  "utils.DEVICE set to the run's device", "their training log (stdout) not shown")


class AuthorsCodeError(RuntimeError):
    """The authors' checkout is missing or incomplete; the message says what to do."""


def load_authors_code(folder, device: str = "cpu") -> SimpleNamespace:
    """Import the authors' modules from ``folder`` (a checkout of LTS4/neural-anisotropy-directions)."""
    folder = Path(folder)
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise AuthorsCodeError(
            f"{folder} is not a complete checkout of the authors' code (missing: {', '.join(missing)}); get it "
            "with: git clone https://github.com/LTS4/neural-anisotropy-directions")
    if not hasattr(np, "long"):
        np.long = np.int64  # their DirectionalLinearDataset uses the alias
    names = ("utils", "models", "directional_bias", "nad_computation")  # generic names: kept out of sys.modules
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    sys.path.insert(0, str(folder))
    try:
        modules = {name: importlib.import_module(name) for name in names}
    except ImportError as err:
        raise AuthorsCodeError(f"the authors' code in {folder} needs {err.name}: pip install "
                               f"{'scikit-learn' if err.name == 'sklearn' else err.name}") from err
    finally:
        sys.path.remove(str(folder))
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
    modules["utils"].DEVICE = device
    return SimpleNamespace(folder=folder, commit=_commit(folder), device=device,
                           nads=np.load(folder / "NADs" / "LeNet_NADs.npy"), **modules)


def _commit(folder: Path) -> str:
    done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown (not a git checkout)"


def authors_accuracy(code, v: torch.Tensor, seed: int, n_train: int, epochs: int) -> float:
    """Test accuracy (in [0, 1]) of their LeNet trained on D(v) by their code, their data seeded by ``seed``."""
    np.random.seed(seed)
    torch.manual_seed(seed)
    trainloader, testloader, _, _ = code.directional_bias.generate_synthetic_data(
        v.reshape(1, 32, 32).numpy(), num_train=n_train, num_test=n_train, sigma=PAPER_RECIPE.sigma,
        epsilon=PAPER_RECIPE.epsilon, shape=[1, 32, 32], batch_size=PAPER_RECIPE.batch_size)
    net = code.models.LeNet(num_channels=1, num_classes=2).to(code.device)
    trans = code.models.TransformLayer(mean=torch.tensor(0.0, device=code.device),
                                       std=torch.tensor(1.0, device=code.device))
    with contextlib.redirect_stdout(io.StringIO()):
        model = code.utils.train(model=net, trans=trans, trainloader=trainloader, testloader=testloader,
                                 epochs=epochs, max_lr=PAPER_RECIPE.lr, momentum=0, weight_decay=0)
        acc, _ = code.utils.test(model, trans, testloader)
    return acc / 100


def nadlib_accuracy(v: torch.Tensor, seed: int, n_train: int, epochs: int, device: str) -> float:
    recipe = PAPER_RECIPE.replace(n_train=n_train, n_test=n_train, epochs=epochs)
    return nadlib.direction_accuracy("lenet", v.reshape(1, 32, 32), recipe=recipe,
                                     run=RunControl(seed=seed, device=device, progress=False))


def _published_fourier(kx: int, ky: int) -> float:
    pub = paper_fourier_accuracy("lenet")
    return pub.get((kx, ky), pub.get(mirror(kx, ky, 32), float("nan")))


def tasks(code) -> list[dict]:
    """The directions trained on: name, kind, the direction (1024 values) and the published accuracy."""
    out = [dict(name=f"Fourier {f}", kind="fourier", v=nadlib.fourier_direction(*f).flatten(),
                published=_published_fourier(*f)) for f in FOURIER]
    curve = published_trainability("lenet")
    published_at = dict(zip(curve["indices"].tolist(), curve["test_acc"].tolist()))
    for i in NAD_INDICES:
        if i < len(code.nads):
            u = torch.as_tensor(code.nads[i], dtype=torch.float32).flatten()
            out.append(dict(name=f"authors' NAD u_{i}", kind="nad", v=u / u.norm(),
                            published=published_at.get(i, float("nan"))))
    return out


def trainability(code, seeds, n_train: int, epochs: int, echo=print) -> dict:
    rows = tasks(code)
    theirs = np.full((len(seeds), len(rows)), np.nan)
    ours = np.full_like(theirs, np.nan)
    seconds = np.zeros(2)
    for s, seed in enumerate(seeds):
        for j, row in enumerate(rows):
            t0 = time.perf_counter()
            theirs[s, j] = authors_accuracy(code, row["v"], seed, n_train, epochs)
            t1 = time.perf_counter()
            ours[s, j] = nadlib_accuracy(row["v"], seed, n_train, epochs, code.device)
            seconds += (t1 - t0, time.perf_counter() - t1)
            echo(f"seed {seed}, {row['name']}: authors' code {theirs[s, j]:.3f}, nadlib {ours[s, j]:.3f}, "
                 f"published {row['published']:.3f}")
    return {"names": np.array([r["name"] for r in rows]), "kinds": np.array([r["kind"] for r in rows]),
            "seeds": np.array(seeds), "authors_acc": theirs, "nadlib_acc": ours,
            "published_acc": np.array([r["published"] for r in rows]), "train_seconds": seconds}


def secant_nads(code, networks: int, ks=(1, 5, 10)) -> dict:
    """Their secant estimator and ours on ``networks`` LeNets each; overlaps and speeds."""
    torch.manual_seed(0)
    finder = code.nad_computation.GradientCovarianceAnisotropyFinder(
        model_gen_fun=lambda: code.models.LeNet(num_classes=1, num_channels=1).eval(), scale=100,
        num_networks=networks, k=max(ks), eval_point=torch.randn([1, 32, 32]), device=code.device)
    t0 = time.perf_counter()
    _, theirs = finder.estimate_NADs()
    t_theirs = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = nadlib.estimate_nads("lenet", networks, k=max(ks), run=RunControl(seed=1, device=code.device,
                                                                              progress=False))
    t_ours = time.perf_counter() - t0
    other = nadlib.estimate_nads("lenet", networks, k=max(ks), run=RunControl(seed=2, device=code.device,
                                                                               progress=False))
    theirs = torch.as_tensor(theirs, dtype=torch.float64)
    theirs = torch.linalg.qr(theirs.T)[0].T  # PCA components are orthonormal to float32 rounding
    return {"overlap_k": np.array(ks),
            "overlap_authors_nadlib": np.array([nadlib.subspace_overlap(theirs, ours.directions, k) for k in ks]),
            "overlap_nadlib_nadlib": np.array([nadlib.subspace_overlap(other.directions, ours.directions, k)
                                               for k in ks]),
            "networks": np.array(networks), "networks_per_s": np.array([networks / t_theirs, networks / t_ours])}


def add_seeds(old: dict, new: dict) -> dict:
    """``old`` (an artifact's arrays) with the trainings of ``new`` appended as more seeds; the tasks must match."""
    if list(np.asarray(old["names"])) != list(np.asarray(new["names"])):
        raise ValueError("the new trainings are of other tasks than the artifact's")
    out = dict(old)
    for key in ("authors_acc", "nadlib_acc"):
        out[key] = np.concatenate([np.asarray(old[key]), np.asarray(new[key])])
    out["seeds"] = np.concatenate([np.asarray(old["seeds"]), np.asarray(new["seeds"])])
    out["train_seconds"] = np.asarray(old["train_seconds"]) + np.asarray(new["train_seconds"])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--authors-code", required=True, type=Path, help="a checkout of LTS4/neural-anisotropy-directions")
    p.add_argument("--seeds", default="0", help="comma-separated seeds of the trainings (default 0)")
    p.add_argument("--n-train", type=int, default=PAPER_RECIPE.n_train, help="samples of D(v) (train and test)")
    p.add_argument("--epochs", type=int, default=PAPER_RECIPE.epochs)
    p.add_argument("--networks", type=int, default=256, help="networks of each secant NAD estimate")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=Path("results/authors_oracle_lenet.npz"))
    p.add_argument("--add-seeds", action="store_true",
                   help="add the trainings of --seeds to the existing --out (same tasks and sizes; its NAD rows kept)")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.out.suffix != ".npz" or not args.out.parent.is_dir():
        p.error(f"--out must be a .npz file in an existing folder, got {args.out}")
    before = None
    if args.add_seeds:
        if not args.out.is_file():
            p.error(f"--add-seeds needs an existing --out, {args.out} does not exist")
        before = nadlib.load_artifact(args.out)
        same = (before[1].get("n_train"), before[1].get("epochs")) == (args.n_train, args.epochs)
        if not same or set(seeds) & set(int(s) for s in before[0]["seeds"]):
            p.error(f"--add-seeds: {args.out} has other sizes or already holds seed(s) {seeds}")
    try:
        code = load_authors_code(args.authors_code, args.device)
    except AuthorsCodeError as err:
        p.error(str(err))
    nadlib.use_free_cores()
    t0 = time.perf_counter()
    arrays = trainability(code, seeds, args.n_train, args.epochs)
    if before is None:
        arrays.update(secant_nads(code, args.networks))
    else:
        arrays = add_seeds(before[0], arrays)
        seeds = [int(s) for s in arrays["seeds"]]
    print(f"secant NADs ({int(arrays['networks'])} networks): overlap authors/nadlib "
          f"{np.round(arrays['overlap_authors_nadlib'], 3)}, nadlib/nadlib {np.round(arrays['overlap_nadlib_nadlib'], 3)}; "
          f"networks/s authors {arrays['networks_per_s'][0]:.1f}, nadlib {arrays['networks_per_s'][1]:.1f}")
    meta = nadlib.provenance(device=args.device, authors_commit=code.commit, accommodations=list(ACCOMMODATIONS),
                             n_train=args.n_train, n_test=args.n_train, epochs=args.epochs, seeds=seeds,
                             recipe="sigma 3, epsilon 1, max_lr 0.5, clip 0.5, batch 128, momentum 0",
                             wall_time=round(time.perf_counter() - t0 + (before[1]["wall_time"] if before else 0), 1))
    nadlib.save_artifact(args.out, arrays, meta)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
