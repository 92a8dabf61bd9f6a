"""Command line: ``python -m nadlib <command> ...`` (or ``nadlib <command>``) for long, resumable runs
that write artifacts with provenance to ``results/``.

Every command shows a progress bar, checkpoints beside its output (``<out>.ckpt.npz``), stops cleanly on
Ctrl-C or SIGTERM (exit code 130) and resumes when the same command is run again.  A bad argument is
reported in one line (``nadlib grid: error: ...``, exit code 2) before any work starts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ._checks import positive_float, unit_interval
from .cifar10 import NPZ_ENV, CIFAR10NotFoundError, cifar_data
from .collapse import run_collapse, separable_data
from .config import PROFILE_NAMES, Recipe, get_device, get_profile
from .control import RunControl, RunStopped, check_folder, check_output
from .directions import fourier_direction
from .experiments import CIFARHyperParams, load_basis, nad_trainability, run_flip, run_poison_sweep
from .grid import profile_grid
from .models import ARCHITECTURES, describe_model, model_from_spec
from .nads import METHODS, Stability, estimate_nads, load_nads
from .paper import published_nads
from .paper_run import DEVICE_TYPES, default_out_dir, format_plan, paper_plan, parse_budget, parse_only, run_paper
from .pooling import ABLATION, ABLATION_FREQS, CONTROLS, ablation_table, run_pooling_ablation
from .recipe_sweep import DEFAULT_SETTINGS, parse_settings, recipe_sweep, sweep_probes, sweep_summary
from .results import CHECKPOINT_EVERY_S, checkpoint_path, file_sha256, provenance, save_artifact
from .signature_runs import run_signatures, signature_inputs

#: Errors that are the user's to fix: reported in one line with exit code 2.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, CIFAR10NotFoundError, ImportError, RunStopped)


# --------------------------------------------------------------------------------------------------
# argument types: each refuses a bad value with a message argparse prints as `error: argument ...`

def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < 2 ** 63:
        raise argparse.ArgumentTypeError(f"a seed is in [0, 2**63 - 1], got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        return positive_float(float(text), "value")
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}") from err


def _fraction(text: str) -> float:
    try:
        return unit_interval(float(text), "value")
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from err


def _npz_path(text: str) -> Path:
    """An output file, checked with the checkpoint beside it before any work starts."""
    try:
        path = check_output(text, "the output")
        check_output(checkpoint_path(path), "its checkpoint")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return path


def _folder(text: str) -> Path:
    """An output folder (``--out-dir``), checked before any work starts."""
    try:
        return check_folder(text, "the output folder")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _device(text: str) -> str:
    """A device this machine has, checked before any work (CUDA on a machine without it is refused)."""
    try:
        get_device(text)
    except (ValueError, RuntimeError) as err:  # the API's advice (device='cpu') in the command line's words
        raise argparse.ArgumentTypeError(str(err).replace("pass device='cpu' or leave device=None",
                                                          "pass --device cpu or leave --device out")) from None
    return text


def _int_list(text: str) -> list[int]:
    """``"0,10,100"`` -> ``[0, 10, 100]``."""
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like '0,10,100', got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


def _freqs(text: str) -> list[tuple[int, int]]:
    """``"1,0;4,4"`` -> ``[(1, 0), (4, 4)]``."""
    try:
        freqs = [tuple(int(k) for k in item.split(",")) for item in text.split(";") if item.strip()]
    except ValueError:
        freqs = []
    if not freqs or any(len(f) != 2 for f in freqs):
        raise argparse.ArgumentTypeError(f"expected frequencies like 'kx,ky;kx,ky', got {text!r}")
    return freqs


def _names(known: list[str]):
    """An argument type for a comma-separated subset of ``known`` names."""
    def parse(text: str) -> list[str]:
        names = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [n for n in names if n not in known]
        if not names or unknown:
            raise argparse.ArgumentTypeError(f"unknown or no names in {text!r}; known: {','.join(known)}")
        return names
    return parse


def _common(p: argparse.ArgumentParser, *, profile: bool = True) -> None:
    if profile:
        p.add_argument("--profile", default=None, choices=PROFILE_NAMES,
                       help="run profile (default: $NADLIB_PROFILE, else default)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--device", default=None, type=_device, help="cpu | cuda (default: CUDA if available)")
    p.add_argument("--out", required=True, type=_npz_path,
                   help="output artifact (.npz); a .ckpt.npz beside it allows resuming")


def _finish(out: Path, arrays: dict, meta: dict) -> None:
    """Write the result, then drop its checkpoint; a failed write keeps the checkpoint and says how to go on."""
    _write_result(out, lambda: save_artifact(out, arrays, meta))


def _write_result(out: Path, write, ckpt: Path | None = None) -> None:
    """``write()`` the result ``out``, then drop its checkpoint (default: the one beside ``out``); when the write
    fails (a full disk, a folder turned read-only) the checkpoint stays and the error says how to go on."""
    ckpt = checkpoint_path(out) if ckpt is None else ckpt
    try:
        write()
    except OSError as err:
        kept = (f"the finished work is kept in {str(ckpt)!r}: run the same command again once it can be written, "
                "and it continues from there") if ckpt.exists() else "nothing was checkpointed"
        raise RunStopped(f"could not write {str(out)!r} ({err.strerror or err}); {kept}") from None
    ckpt.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# grid

def _arch_spec(text: str) -> str:
    """``--arch``: a registered name, or ``package.module:Class`` of yours (checked when the command runs)."""
    if ":" not in text and text.lower() not in ARCHITECTURES:
        raise argparse.ArgumentTypeError(f"unknown architecture {text!r}: a registered name "
                                         f"({', '.join(ARCHITECTURES)}) or a model of yours as 'package.module:Class'")
    return text


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"width\": 64}}', got {text!r} ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"width\": 64}}', got {text!r}")
    return value


def _add_arch(p: argparse.ArgumentParser, *, required: bool, help: str | None = None) -> None:
    p.add_argument("--arch", required=required, type=_arch_spec, default=None, metavar="ARCH",
                   help=(help or "the network") + f": {', '.join(ARCHITECTURES)}, or a model of yours as "
                        "'package.module:Class' (imported from the current folder or PYTHONPATH; the command sets "
                        "num_classes when the class takes it)")
    p.add_argument("--arch-kwargs", type=_json_object, default=None, metavar="JSON",
                   help="keyword arguments of your model's class, e.g. '{\"width\": 64}'")


def _model(args, num_classes: int):
    """The model of ``--arch``/``--arch-kwargs``: a registered name, or a constructor of the user's class."""
    return _spec_model(args.arch, args.arch_kwargs, num_classes)


def _spec_model(spec: str, kwargs: dict | None, num_classes: int):
    """A registered name, or a constructor of the user's class ``package.module:Class`` (imported from the
    current folder or PYTHONPATH) built with ``kwargs``."""
    if ":" in spec and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # `nadlib grid --arch mymodels:Net` from the folder of mymodels.py
    return model_from_spec(spec, kwargs, num_classes=num_classes)


def _add_grid(sub) -> None:
    p = sub.add_parser("grid", help="test accuracy of one architecture over a Fourier grid of D(v)")
    _add_arch(p, required=True)
    p.add_argument("--stride", type=_positive_int, default=None, help="grid step (default: the profile's)")
    p.add_argument("--band", type=_positive_int, default=None,
                   help="only the low-frequency block with signed frequencies in [-B, B-1] (8: the paper's maps)")
    p.add_argument("--freqs", type=_freqs, default=None,
                   help="explicit frequencies 'kx,ky;kx,ky;...' instead of a grid")
    p.add_argument("--n-train", type=_positive_int, default=None)
    p.add_argument("--n-test", type=_positive_int, default=None)
    p.add_argument("--epochs", type=_positive_int, default=None)
    p.add_argument("--epsilon", type=_positive_float, default=None, help="margin of D(v) (default: the profile's)")
    p.add_argument("--workers", type=_positive_int, default=None, help="CPU worker processes (default: one per core)")
    _common(p)
    p.set_defaults(func=_run_grid)


def _run_grid(args) -> None:
    profile = get_profile(args.profile)
    device = get_device(args.device)
    stride = profile.separability.grid_stride if args.stride is None else args.stride
    overrides = {k: v for k, v in (("n_train", args.n_train), ("n_test", args.n_test), ("epochs", args.epochs),
                                    ("epsilon", args.epsilon)) if v is not None}
    ckpt = checkpoint_path(args.out)
    resumed = ckpt.exists()
    result = profile_grid(_model(args, num_classes=2), profile, freqs=args.freqs, stride=stride, band=args.band, workers=args.workers,
                          recipe=profile.separability.recipe().replace(**overrides),
                          run=RunControl(seed=args.seed, device=device, checkpoint=ckpt))
    meta = provenance(device=device, profile=profile.name, stride=stride, band=args.band, resumed=resumed,
                      wall_time=result.wall_time, **result.settings)
    _finish(args.out, result.to_arrays(), meta)
    acc = np.array(list(result.accuracy.values()))
    print(f"wrote {args.out}: {len(acc)} directions, accuracy min {acc.min():.3f} / median "
          f"{np.median(acc):.3f} / max {acc.max():.3f}, {result.wall_time:.0f} s (this session)")


def _add_pooling(sub) -> None:
    names = [s.name for s in (*ABLATION, *CONTROLS)]
    p = sub.add_parser("pooling", help="the pooling ablation of Chapter 1: LeNet without pooling, one change "
                                       "at a time (resumable)")
    p.add_argument("--settings", type=_names(names), default=None,
                   help=f"comma-separated settings (default: all but the controls): {','.join(names)}")
    p.add_argument("--freqs", type=_freqs, default=None,
                   help="Fourier directions 'kx,ky;kx,ky;...' (default: "
                        + ";".join(f"{a},{b}" for a, b in ABLATION_FREQS) + ")")
    p.add_argument("--n-test", type=_positive_int, default=10_000)
    p.add_argument("--scale", type=_fraction, default=1.0,
                   help="multiply every training-set size and epoch count (quick checks)")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    p.add_argument("--budget", type=_positive_float, default=None,
                   help="minutes: stop after the run that passes it and write the runs done so far "
                        "(the others are 'not run'); rerun the same command to finish")
    _common(p, profile=False)
    p.set_defaults(func=_run_pooling)


def _run_pooling(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    chosen = list(ABLATION) if args.settings is None else [s for s in (*ABLATION, *CONTROLS)
                                                            if s.name in args.settings]
    ckpt = checkpoint_path(args.out)
    resumed = ckpt.exists()
    deadline = None if args.budget is None else time.monotonic() + 60 * args.budget
    arrays, record = run_pooling_ablation(chosen, args.freqs or ABLATION_FREQS, n_test=args.n_test,
                                          scale=args.scale, run=RunControl(seed=args.seed, device=args.device,
                                                                           checkpoint=ckpt, deadline=deadline))
    meta = provenance(device=get_device(args.device), resumed=resumed, threads=torch.get_num_threads(),
                      wall_time_s=round(time.perf_counter() - t0, 1), **record)
    if record["complete"]:
        _finish(args.out, arrays, meta)
        print(f"wrote {args.out}")
    else:  # keep the checkpoint: the same command finishes the runs not done
        save_artifact(args.out, arrays, meta)
        print(f"wrote {args.out} with the runs done so far (budget reached); run the same command to finish")
    if "lenet" in arrays["names"]:
        print(ablation_table(arrays, n_test=args.n_test))
    for label, row in zip(arrays["labels"], arrays["test_acc"]):
        print(f" {label}: test accuracy " + ", ".join(f"{a:.3f}" for a in row))


# --------------------------------------------------------------------------------------------------
# nads, trainability

def _add_nads(sub) -> None:
    p = sub.add_parser("nads", help="estimate the NADs of an architecture (resumable)",
                       description="Estimate NADs; interrupt with Ctrl-C and rerun the same command to resume.")
    _add_arch(p, required=True)
    p.add_argument("--method", choices=METHODS, default="secant")
    p.add_argument("--networks", type=_positive_int, default=10_000, help="number of random networks")
    p.add_argument("--keep", type=_positive_int, default=None, help="directions to store (default: all)")
    p.add_argument("--step", type=_positive_float, default=100.0, help="secant step h")
    p.add_argument("--channels", type=_positive_int, default=1)
    p.add_argument("--size", type=_positive_int, default=32)
    p.add_argument("--batch-size", type=_positive_int, default=None, help="networks per step")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    p.add_argument("--checkpoint", default=None, help="checkpoint path (default: <out>.ckpt.npz)")
    p.add_argument("--checkpoint-every", type=_positive_float, default=CHECKPOINT_EVERY_S,
                   help="seconds between checkpoints")
    p.add_argument("--stop-at-stability", type=_fraction, default=None,
                   help="stop when the split-half top-10 overlap reaches this value")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _common(p, profile=False)
    p.set_defaults(func=_run_nads)


def _run_nads(args) -> None:
    dim = args.channels * args.size * args.size
    if args.keep is not None and args.keep > dim:
        raise ValueError(f"--keep {args.keep} exceeds the input dimension {dim}")
    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = Path(args.checkpoint) if args.checkpoint else checkpoint_path(args.out)
    res = estimate_nads(_model(args, num_classes=1), args.networks, method=args.method,
                        input_shape=(args.channels, args.size, args.size), step=args.step,
                        batch_size=args.batch_size, stability=Stability(stop_at=args.stop_at_stability),
                        run=RunControl(seed=args.seed, device=args.device, progress=not args.quiet, checkpoint=ckpt,
                                       checkpoint_every=args.checkpoint_every))
    _write_result(args.out, lambda: res.save(args.out, k=args.keep), ckpt)
    print(f"wrote {args.out}: {res!r}, wall time {res.meta['wall_time_s']:.1f} s")


def _add_trainability(sub) -> None:
    p = sub.add_parser("trainability", help="train on D(u_i) for several NAD indices i (resumable)")
    p.add_argument("--nads", required=True, help="NAD artifact (.npz) written by `nads`")
    _add_arch(p, required=False, help="the network trained on D(u_i) (default: the architecture the NADs were "
                                      "estimated for)")
    p.add_argument("--indices", type=_int_list, default=None,
                   help="comma-separated NAD indices (default: the profile's)")
    p.add_argument("--n-train", type=_positive_int, default=None, help="default: the profile's")
    p.add_argument("--n-test", type=_positive_int, default=None, help="default: the profile's")
    p.add_argument("--epochs", type=_positive_int, default=None, help="default: the profile's")
    _common(p)
    p.set_defaults(func=_run_trainability)


def _nads_arch(nads, path) -> str:
    """The registered architecture a NAD file was estimated for (what `trainability` trains by default)."""
    arch = str(nads.meta.get("arch", "")).lower()
    if arch not in ARCHITECTURES:
        raise ValueError(f"the NADs in {path} were estimated for {nads.meta.get('arch', 'an unnamed model')!r}, "
                         "which is not a registered architecture: name the network to train with --arch")
    return arch


def _run_trainability(args) -> None:
    t0 = time.perf_counter()
    cfg = get_profile(args.profile).nads
    nads = load_nads(args.nads)
    arch = _model(args, num_classes=2) if args.arch else _nads_arch(nads, args.nads)
    indices = args.indices if args.indices is not None else list(cfg.trainability_indices)
    sizes = {"n_train": args.n_train or cfg.n_train, "n_test": args.n_test or cfg.n_test,
             "epochs": args.epochs or cfg.epochs}
    ckpt = checkpoint_path(args.out)
    resumed = ckpt.exists()
    arrays = nad_trainability(nads, indices, arch=arch, recipe=Recipe(**sizes),
                              run=RunControl(seed=args.seed, device=args.device, checkpoint=ckpt))
    meta = provenance(device=get_device(args.device), arch=describe_model(arch, nads.input_shape), nads=str(args.nads),
                      nads_file_sha256=file_sha256(args.nads), nads_method=nads.method,
                      nads_networks=nads.n_networks, seed=args.seed, resumed=resumed,
                      wall_time_s=round(time.perf_counter() - t0, 1), **sizes)
    _finish(args.out, arrays, meta)
    print(f"wrote {args.out}: " + ", ".join(f"{i}: {a:.3f}" for i, a in zip(arrays["indices"], arrays["test_acc"])))


# --------------------------------------------------------------------------------------------------
# CIFAR-10: poison, flip

def _add_cifar(p: argparse.ArgumentParser) -> None:
    _add_arch(p, required=True, help="the network (3 input channels, 10 outputs)")
    p.add_argument("--nads", required=True, help="NAD file (.npz) of this architecture, or 'fourier'")
    p.add_argument("--npz", default=None, help=f"local CIFAR-10 .npz (default: ${NPZ_ENV}, else torchvision)")
    p.add_argument("--root", default=None, help="torchvision cache folder (default: $NADLIB_DATA/cifar10 "
                                                "or ~/.cache/nadlib/cifar10)")
    p.add_argument("--no-download", action="store_true", help="never download CIFAR-10")
    p.add_argument("--synthetic", action="store_true", help="use synthetic stand-in images (tests only)")
    p.add_argument("--n-train", type=_positive_int, default=None, help="training images (default: the profile's)")
    p.add_argument("--n-test", type=_positive_int, default=None, help="test images (default: the profile's)")
    p.add_argument("--epochs", type=_positive_int, default=None, help="default: the profile's")
    _common(p)


def _add_poison_flip(sub) -> None:
    p = sub.add_parser("poison", help="CIFAR-10 poisoned on a NAD carrier: accuracy vs NAD index")
    _add_cifar(p)
    p.add_argument("--indices", type=int, nargs="+", default=None, help="NAD indices (default: the profile's)")
    p.add_argument("--epsilon", type=_positive_float, default=None,
                   help="carrier size (pixel units, images in [0, 1]; default: the profile's)")
    p.set_defaults(func=_run_poison)
    p = sub.add_parser("flip", help="train on CIFAR-10 and on its NAD-flipped version")
    _add_cifar(p)
    p.add_argument("--until-train-acc", type=_fraction, default=None,
                   help="train each version to this training accuracy: rerun with twice the epochs until "
                        "reached (compares networks that fit equally well)")
    p.add_argument("--max-epochs", type=_positive_int, default=None,
                   help="longest run with --until-train-acc (default: 8 x --epochs)")
    p.set_defaults(func=_run_flip)


def _cifar_setup(args):
    """What both CIFAR commands start with: profile, start time, model, NAD basis, data (the model and the
    basis first: a bad ``--arch`` or ``--nads`` is reported before the data are loaded)."""
    profile = get_profile(args.profile)
    start = time.perf_counter()
    model = _model(args, 10)
    u = load_basis(args.nads)
    data = cifar_data(profile, n_train=args.n_train, n_test=args.n_test, npz=args.npz, root=args.root,
                      download=not args.no_download, synthetic=args.synthetic or None, seed=args.seed,
                      device=args.device)
    print(f"data: {data['source']}, {data['n_train']} train / {data['n_test']} test images")
    return profile, start, model, u, data


def _cifar_meta(args, profile, settings, data, wall, start, resumed) -> dict:
    return provenance(device=get_device(args.device), profile=profile.name, wall_time=wall, settings=settings,
                      nads_file=str(args.nads), data_source=data["source"], resumed=resumed,
                      nads_file_sha256=None if args.nads == "fourier" else file_sha256(args.nads),
                      elapsed_this_session=time.perf_counter() - start)


def _run_poison(args) -> None:
    profile, start, model, u, data = _cifar_setup(args)
    ckpt = checkpoint_path(args.out)
    resumed = ckpt.exists()
    arrays, settings = run_poison_sweep(model, u, data, indices=args.indices, epsilon=args.epsilon,
                                        epochs=args.epochs, profile=profile,
                                        run=RunControl(seed=args.seed, device=args.device, checkpoint=ckpt))
    wall = float(arrays["wall_time"].sum() + arrays.get("clean_wall_time", 0.0))
    _finish(args.out, arrays, _cifar_meta(args, profile, settings, data, wall, start, resumed))
    print(f"wrote {args.out} ({wall:.0f} s of training)")
    print(" index | train acc (poisoned) | clean test acc | carrier-following")
    if "clean_test_acc" in arrays:
        print(f" clean | {float(arrays['clean_train_acc']):20.3f} | {float(arrays['clean_test_acc']):14.3f} |")
    for i, a, b, c in zip(arrays["indices"], arrays["train_acc"], arrays["test_acc"], arrays["carrier_acc"]):
        print(f" {i:5d} | {a:20.3f} | {b:14.3f} | {c:.3f}")


def _run_flip(args) -> None:
    if args.max_epochs is not None and args.until_train_acc is None:
        raise ValueError("--max-epochs needs --until-train-acc")
    profile, start, model, u, data = _cifar_setup(args)
    ckpt = checkpoint_path(args.out)
    resumed = ckpt.exists()
    arrays, settings = run_flip(model, u, data, epochs=args.epochs, profile=profile,
                                until_train_acc=args.until_train_acc, max_epochs=args.max_epochs,
                                run=RunControl(seed=args.seed, device=args.device, checkpoint=ckpt))
    wall = float(arrays["wall_time"].sum())
    _finish(args.out, arrays, _cifar_meta(args, profile, settings, data, wall, start, resumed))
    print(f"wrote {args.out} ({wall:.0f} s of training)")
    for v, a, b, e in zip(arrays["variants"], arrays["train_acc"], arrays["test_acc"], arrays["epochs"]):
        print(f" {v:9s} train {a:.3f}  test {b:.3f}  ({e} epochs)")


# --------------------------------------------------------------------------------------------------
# collapse (Chapter 5)

def _add_collapse(sub) -> None:
    p = sub.add_parser("collapse", help="neural collapse (NC1-NC4 per epoch) on CIFAR-10 or D(v)")
    _add_arch(p, required=False, help="the network (default: the profile's collapse.arch)")
    p.add_argument("--head", default=None, metavar="NAME",
                   help="the classifier layer whose inputs are the features (default: the last nn.Linear)")
    p.add_argument("--freq", type=int, nargs=2, metavar=("KX", "KY"), default=None,
                   help="train on D(v) for this Fourier direction instead of CIFAR-10")
    p.add_argument("--epsilon", type=_positive_float, default=None, help="margin of D(v) (default: the profile's)")
    p.add_argument("--synthetic", action="store_true", help="synthetic stand-in images instead of CIFAR-10")
    p.add_argument("--n-train", type=_positive_int, default=None)
    p.add_argument("--n-test", type=_positive_int, default=None)
    p.add_argument("--epochs", type=_positive_int, default=None)
    p.add_argument("--lr", type=_positive_float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--batch-size", type=_positive_int, default=None)
    _common(p)
    p.set_defaults(func=_run_collapse)


def _run_collapse(args) -> None:
    profile = get_profile(args.profile)
    cfg = profile.collapse
    arch = _spec_model(args.arch or cfg.arch, args.arch_kwargs, 2 if args.freq is not None else 10)  # before the data
    if args.freq is not None:  # D(v) for one Fourier direction
        data = separable_data(fourier_direction(*args.freq), args.n_train or cfg.nad_n_train,
                              args.n_test or cfg.nad_n_test, sigma=cfg.nad_sigma,
                              epsilon=args.epsilon or cfg.nad_epsilon, seed=args.seed, device="cpu")
        epochs = args.epochs or cfg.nad_epochs
    else:  # CIFAR-10 (real, else CIFAR10NotFoundError saying how to get it; --synthetic: stand-in images)
        data = cifar_data(profile, n_train=args.n_train or cfg.n_train, n_test=args.n_test or cfg.n_test,
                          synthetic=args.synthetic or None, seed=args.seed, device="cpu")
        epochs = args.epochs or cfg.epochs
    hp = CIFARHyperParams(lr=args.lr or cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay if args.weight_decay is None else args.weight_decay,
                          batch_size=args.batch_size or cfg.batch_size)
    run = run_collapse(arch, data, epochs, hp=hp, out=args.out, head=args.head, profile=profile.name,
                       run=RunControl(seed=args.seed, device=args.device, progress=True))
    zero = run.zero_error_epoch
    print(f"wrote {args.out}: {run.arch}, {epochs} epochs, {run.wall_time:.0f} s; zero training error "
          f"{'from epoch ' + str(zero) if zero is not None else 'not reached'}; final NC1 "
          f"{run.final('nc1'):.3g} (test {run.final('test_nc1'):.3g}), NC3 {run.final('nc3'):.3g}, "
          f"NC4 {run.final('nc4'):.3g}")


# --------------------------------------------------------------------------------------------------
# signature (Chapter 4)

def _add_signature(sub) -> None:
    p = sub.add_parser("signature", help="non-linearity signatures (affinity scores) of random networks on "
                                         "CIFAR-10 test images (resumable)")
    p.add_argument("--archs", nargs="+", required=True, type=_arch_spec, metavar="ARCH",
                   help=f"one or more of: {', '.join(ARCHITECTURES)}, or models of yours as 'package.module:Class' "
                        "(3 input channels; the command sets num_classes=10 when the class takes it)")
    p.add_argument("--arch-kwargs", type=_json_object, default=None, metavar="JSON",
                   help="keyword arguments of your models' classes, e.g. '{\"width\": 64}'")
    p.add_argument("--n-samples", type=_positive_int, default=None,
                   help="test images per signature; must exceed the widest layer (default: the profile's)")
    p.add_argument("--seeds", type=_positive_int, default=None,
                   help="random networks per architecture, seeds 0..K-1 (default: the profile's)")
    p.add_argument("--synthetic", action="store_true", help="use the synthetic stand-in images (no CIFAR-10)")
    _common(p)
    p.set_defaults(func=_run_signature)


def _run_signature(args) -> None:
    models = {}  # label: the registered name, or the class name of a model of yours; resolved before any work
    for spec in args.archs:
        label = spec.rpartition(":")[2] if ":" in spec else spec.lower()
        if label in models:
            raise ValueError(f"--archs names {label!r} twice")
        models[label] = _spec_model(spec, args.arch_kwargs if ":" in spec else None, 10)
    profile = get_profile(args.profile)
    n = args.n_samples or profile.signature.artifact_n_samples
    inputs, source = signature_inputs(profile, n, synthetic=True if args.synthetic else None)
    seeds = range(args.seeds) if args.seeds else None  # None: the profile's (fewer for costly networks)
    results = run_signatures(models, inputs, profile=profile, n_samples=n, init_seeds=seeds, out=args.out,
                             data_source=source, run=RunControl(seed=args.seed, device=args.device,
                                                                checkpoint=checkpoint_path(args.out)))
    checkpoint_path(args.out).unlink(missing_ok=True)
    for arch, sigs in results.items():
        rho = [float(s.rho.mean()) for s in sigs]
        print(f"{arch}: {len(sigs[0])} activation layers, mean rho {sum(rho) / len(rho):.3f} over "
              f"{len(sigs)} network(s)")
    print(f"wrote {args.out} ({source}, {n} images)")


# --------------------------------------------------------------------------------------------------
# recipe-sweep: which training setting gives the published curves?

def _settings(text: str) -> list[dict]:
    try:
        return parse_settings(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _sweep_nads(spec: str) -> torch.Tensor:
    """``published`` (the bundled first 64 published NADs), a ``.npy`` file of NADs as rows (the authors'
    format), or a NAD artifact written by ``nads``."""
    if spec == "published":
        return published_nads("lenet").directions
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"no NAD file at {spec!r} (give 'published', a .npy file of NADs as rows, or an "
                                "artifact written by `python -m nadlib nads`)")
    if path.suffix == ".npy":
        rows = np.load(path, allow_pickle=False)
        if rows.ndim != 2 or rows.shape[1] != 1024:
            raise ValueError(f"{spec!r} must hold NADs as rows of 1024 = 32 x 32 numbers, got shape {rows.shape}")
        return torch.from_numpy(rows.astype(np.float32)).reshape(-1, 1, 32, 32)
    return load_nads(path).directions


def _add_recipe_sweep(sub) -> None:
    p = sub.add_parser("recipe-sweep", help="LeNet on published NADs and Fourier directions under variants of the "
                                            "D(v) recipe, beside the published accuracies (resumable)")
    p.add_argument("--nads", default="published",
                   help="the authors' NADs: 'published' (bundled, first 64), a .npy file of rows, or a NAD artifact")
    p.add_argument("--indices", type=_int_list, default=[0, 100, 400], help="NAD indices (default: 0,100,400)")
    p.add_argument("--freqs", type=_freqs, default=[(2, 0), (12, 0)],
                   help="Fourier frequencies 'kx,ky;...' (default: 2,0;12,0)")
    p.add_argument("--settings", type=_settings, default=parse_settings(DEFAULT_SETTINGS),
                   help="';'-separated settings, each 'base' or overrides 'key=value[,key=value]' of the paper "
                        "recipe (keys: epsilon, sigma, n_train, epochs, lr); default: " + DEFAULT_SETTINGS)
    p.add_argument("--n-test", type=_positive_int, default=10_000)
    p.add_argument("--workers", type=_positive_int, default=1, help="worker processes, one torch thread each")
    _common(p, profile=False)
    p.set_defaults(func=_run_recipe_sweep)


def _run_recipe_sweep(args) -> None:
    t0 = time.perf_counter()
    device = get_device(args.device)
    nads = _sweep_nads(args.nads)
    probes = sweep_probes(nads, args.indices, args.freqs)  # validates indices and frequencies before any work
    ckpt = checkpoint_path(args.out)
    resumed = ckpt.exists()
    arrays = recipe_sweep(probes, args.settings, n_test=args.n_test, workers=args.workers,
                          run=RunControl(seed=args.seed, device=device, checkpoint=ckpt))
    source = "published (bundled first 64)" if args.nads == "published" else Path(args.nads).name
    meta = provenance(device=device, arch="lenet", nads=source,
                      nads_file_sha256=None if args.nads == "published" else file_sha256(args.nads),
                      seed=args.seed, n_test=args.n_test, workers=args.workers, resumed=resumed,
                      wall_time_s=round(time.perf_counter() - t0, 1))
    _finish(args.out, arrays, meta)
    best = sweep_summary(arrays)
    print(f"wrote {args.out}: closest to the published values: {best['label']} (mean abs. difference "
          f"{best['distance']:.3f}; paper recipe {best['base_distance']:.3f})")


# --------------------------------------------------------------------------------------------------
# paper: every artifact at the paper's sizes, within a budget

def _budget(text: str) -> float:
    try:
        return parse_budget(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _only(text: str) -> tuple[str, ...]:
    try:
        return parse_only(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_paper(sub) -> None:
    p = sub.add_parser("paper", help="make every catalogue entry of a profile that is missing (the paper's sizes by "
                                     "default), within a budget",
                       description="Print the plan with estimated costs, then make the missing entries of the "
                                   "catalogue (nadlib.catalogue) in priority order, each under its catalogue name; "
                                   "with --budget stop cleanly when it runs out and continue on the next call.  "
                                   "The book shows the results when $NADLIB_RESULTS names the output folder.")
    p.add_argument("--budget", type=_budget, default=None, help="time for this call: 90s, 12m, 2h, 1.5h")
    p.add_argument("--only", type=_only, default=None,
                   help="comma-separated catalogue keys (lenet/nads/secant), patterns (lenet/*, */grid) or steps "
                        "(nads, trainability, grid, pooling, poison, flip, signatures, collapse)")
    p.add_argument("--out-dir", type=_folder, default=None,
                   help="output folder (default: your results folder, $NADLIB_RESULTS, else ./nadlib-results)")
    p.add_argument("--device", default=None, type=_device, help="cpu | cuda (default: CUDA if available)")
    p.add_argument("--device-type", choices=DEVICE_TYPES, default=None,
                   help="with --dry-run: show the costs for this device type (e.g. cuda on a CPU machine)")
    p.add_argument("--profile", choices=PROFILE_NAMES, default="paper",
                   help="sizes: paper (default, a GPU), default (a CPU: the bundled results' sizes) or smoke "
                        "(every entry tiny, for tests)")
    p.add_argument("--engine", choices=("serial", "ray"), default="serial",
                   help="serial (default) or ray: grid directions and NAD chunks as Ray tasks")
    p.add_argument("--address", default=None, help="Ray cluster address ('auto': the `ray start` cluster of this "
                                                   "node); default: a local Ray instance")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--dry-run", action="store_true", help="print the plan only")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_paper)


def _run_paper(args) -> None:
    if args.device_type is not None and not args.dry_run:
        raise ValueError("--device-type only changes the costs shown by --dry-run; choose where to run with --device")
    if args.address is not None and args.engine != "ray":
        raise ValueError("--address is for the Ray engine: add --engine ray")
    try:
        device_type = args.device_type or get_device(args.device).type
    except RuntimeError as err:  # CUDA asked for on a machine without it: the user's to fix
        raise ValueError(str(err)) from None
    out_dir = args.out_dir if args.out_dir is not None else default_out_dir()
    rows = paper_plan(args.profile, args.only, out_dir)
    print(format_plan(rows, args.profile, device_type))
    if args.dry_run:
        return
    print()
    run_paper(args.profile, only=args.only, out_dir=out_dir, engine=args.engine,
              address=args.address, budget_s=args.budget,
              run=RunControl(seed=args.seed, device=args.device, progress=not args.quiet))


# --------------------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------------------
# card: the three signatures of any architecture on one page

def _add_card(sub) -> None:
    p = sub.add_parser("card", help="the signature card of an architecture (its NADs, Fourier and NAD-index "
                                    "trainability, non-linearity signature and neural collapse) as one HTML page")
    p.add_argument("arch", type=_arch_spec, metavar="ARCH",
                   help=f"{', '.join(ARCHITECTURES)}, or a model of yours as 'package.module:Class' whose class "
                        "takes num_classes (the card builds it with 1, 2 and 10 outputs)")
    p.add_argument("--arch-kwargs", type=_json_object, default=None, metavar="JSON",
                   help="keyword arguments of your model's class, e.g. '{\"width\": 64}'")
    p.add_argument("--profile", default="default", choices=PROFILE_NAMES,
                   help="sizes: smoke (a minute), default (a laptop), paper (a GPU)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--device", default=None, type=_device, help="cpu | cuda (default: CUDA if available)")
    p.add_argument("--out-dir", type=_folder, required=True, help="folder of card.html and card.npz")
    p.set_defaults(func=_run_card)


def _run_card(args) -> None:
    from .book.card import signature_card  # matplotlib: only for this command

    if ":" in args.arch:
        probe = _model(args, num_classes=1)
        if "num_classes" not in probe.keywords:
            raise ValueError(f"{args.arch} does not take num_classes: the card builds it with 1 output (NADs), 2 "
                             "(D(v)) and 10 (the signature); add a num_classes argument to the class")
        make = lambda k: _model(args, num_classes=k)()  # noqa: E731
    else:
        make = args.arch
    page = signature_card(make, args.out_dir, profile=args.profile,
                          run=RunControl(seed=args.seed, device=args.device))
    print(f"wrote {page} (and {page.with_suffix('.npz').name} beside it)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nadlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_grid, _add_pooling, _add_nads, _add_trainability, _add_poison_flip, _add_signature,
                _add_collapse, _add_recipe_sweep, _add_paper, _add_card):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("\ninterrupted: progress so far is saved; run the same command again to resume", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        message = str(err).strip().splitlines()
        print(f"{parser.prog} {args.command}: error: {message[0] if message else type(err).__name__}",
              file=sys.stderr)
        for line in message[1:]:
            print(f"  {line}", file=sys.stderr)
        return 2
    return 0
