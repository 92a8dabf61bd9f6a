"""Non-linearity signatures of many architectures in one artifact (``python -m nadlib signature``).

:func:`run_signatures` computes :func:`nadlib.nonlinearity_signature` for randomly initialised networks of
several architectures on the same CIFAR-10 test images (:func:`signature_inputs`), resumably, and writes
one artifact that :func:`load_signatures` reads back.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ._checks import is_int
from .affinity import Signature, nonlinearity_signature
from .cifar10 import cifar_data
from .config import get_profile
from .control import RunControl, as_run
from .experiments import Normaliser
from .models import ARCHITECTURES, describe_model, model_name, seeded_model
from .results import Checkpoint, load_artifact, provenance, register_loader, save_artifact


def signature_inputs(profile=None, n: int | None = None, *, synthetic: bool | None = None, seed: int = 0,
                     device="cpu") -> tuple[torch.Tensor, str]:
    """``n`` class-balanced CIFAR-10 test images, normalised per colour channel, and their source.

    ``n`` defaults to ``profile.signature.artifact_n_samples``.  ``synthetic=None`` uses the real
    CIFAR-10 when :func:`nadlib.cifar_data` finds it (downloading it except in the ``smoke``
    profile) and falls back to the synthetic stand-in images otherwise; ``True``/``False`` force one.
    The returned source string says which one was used.
    """
    profile = profile or get_profile()
    n = profile.signature.artifact_n_samples if n is None else n
    if not is_int(n) or n < 10:
        raise ValueError(f"n must be an int >= 10 (one image per class at least), got {n!r}")
    kwargs = dict(n_train=10, n_test=n, seed=seed, device=device)
    data = cifar_data(profile, synthetic="auto" if synthetic is None else synthetic,
                      download=profile.name != "smoke", **kwargs)
    x = data["x_test"]
    return Normaliser(x)(x), data["source"]


def _seeds_for(arch: str, init_seeds, profile) -> list[int]:
    if init_seeds is None:
        cfg = profile.signature
        costly = arch in ("vgg11_nopool", "resnet18_nopool", "densenet121_nopool")
        return list(range(cfg.artifact_seeds_nopool_deep if costly else cfg.artifact_seeds))
    if isinstance(init_seeds, dict):
        if arch not in init_seeds:
            raise ValueError(f"init_seeds has no entry for {arch!r}")
        init_seeds = init_seeds[arch]
    seeds = [int(s) for s in init_seeds]
    if not seeds:
        raise ValueError(f"no init seeds for {arch!r}")
    return seeds


#: A label of a model in a signature artifact (array names ``rho_<label>``, checkpoint keys ``<label>__<seed>``).
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*(_[A-Za-z0-9.-]+)*")


def _named_models(archs) -> dict[str, str | Callable]:
    """``{label: registered name or constructor}`` of ``run_signatures``' ``archs``, checked before any work."""
    if isinstance(archs, str):
        archs = [archs]
    if isinstance(archs, Mapping):
        items = list(archs.items())
    else:
        archs = list(archs)
        items = [(a.lower() if isinstance(a, str) else model_name(a), a) for a in archs]
    models = {}
    for label, a in items:
        if isinstance(a, str):
            if a.lower() not in ARCHITECTURES:
                raise ValueError(f"unknown architecture {a!r}; known: {', '.join(ARCHITECTURES)}, or give a model "
                                 "of yours as {label: constructor}")
            a = a.lower()
        elif isinstance(a, torch.nn.Module) or not callable(a):
            raise TypeError(f"{label!r}: a model is a registered name or a zero-argument constructor that builds a "
                            f"fresh network with 10 outputs (e.g. `lambda: Net(num_classes=10)`), got "
                            f"{type(a).__name__}")
        if not isinstance(label, str) or not _LABEL.fullmatch(label):
            raise ValueError(f"model label {label!r} must be letters, digits, '.', '-' and single '_' (it names "
                             "arrays of the artifact); give models as {label: constructor}")
        if label in models:
            raise ValueError(f"two models are labelled {label!r}")
        models[label] = a
    if not models:
        raise ValueError("archs must name at least one architecture")
    return models


def run_signatures(archs: Sequence[str] | Mapping[str, str | Callable], inputs=None, *, profile=None, n_samples: int | None = None,
                   init_seeds=None, out=None, run: RunControl | None = None, **meta) -> dict:
    """Signatures of randomly initialised networks of several architectures; optionally saved.

    Args:
        archs: names from :data:`nadlib.ARCHITECTURES` (built with ``in_channels`` from ``inputs`` and
            10 outputs, PyTorch's default initialisation), or ``{label: model}`` where a model is a registered
            name or a zero-argument constructor of yours (taking ``inputs``' images; ``label`` names its arrays
            in the artifact).  Checkpoints and provenance name a constructor by :func:`nadlib.describe_model`.
        inputs: ``N x C x 32 x 32`` images; default: :func:`signature_inputs` of the profile (CIFAR-10
            test images, or the synthetic stand-in when CIFAR-10 is not available).
        profile: sizes (default: :func:`nadlib.get_profile`): ``signature.artifact_n_samples`` and the
            number of init seeds (``artifact_seeds``; ``artifact_seeds_nopool_deep`` for the three costly
            pooling-free deep networks).
        n_samples: see :func:`nonlinearity_signature` (the same inputs for every network).
        init_seeds: seeds of the networks (``torch.manual_seed(s)`` before building): a sequence for every
            architecture, a dict ``{arch: seeds}``, or ``None`` for the profile's.
        out: path of an ``.npz`` artifact to write (with :func:`nadlib.provenance`), or ``None``.
        run: :class:`nadlib.RunControl`: ``run.seed`` draws the inputs (see :func:`nonlinearity_signature`);
            with ``run.checkpoint`` (``.npz``) every finished network is stored there, and a run with the
            same settings started again (e.g. after an interruption) skips them; a bar over networks
            (default on).
        meta: extra JSON-serialisable provenance (e.g. ``command=...``).

    Returns:
        ``{arch: [Signature, ...]}`` (one per init seed).  The artifact stores, for each ``arch``,
        ``rho_<arch>`` (seeds x layers), ``seeds_<arch>``, ``names_<arch>``, ``dims_<arch>``,
        ``kinds_<arch>`` and ``seconds_<arch>`` (wall time per network: forward passes + scores), plus
        ``archs`` and ``n_samples``; read it back with :func:`load_signatures`.
    """
    run = as_run(run)
    seed, checkpoint = run.seed, run.checkpoint
    profile = profile or get_profile()
    models = _named_models(archs)
    archs = list(models)
    seeds = {a: _seeds_for(a, init_seeds, profile) for a in archs}
    n_samples = profile.signature.artifact_n_samples if n_samples is None else n_samples
    source = meta.pop("data_source", "inputs given by the caller")
    if inputs is None:
        inputs, source = signature_inputs(profile, n_samples)
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4:
        raise TypeError("inputs must be an N x C x H x W torch.Tensor of images")
    described = {a: describe_model(m, tuple(inputs.shape[1:])) for a, m in models.items()}
    device = run.torch_device()
    results: dict[str, list[Signature]] = {}
    ckpt = None
    if checkpoint is not None:
        ckpt = Checkpoint(checkpoint, {"n_samples": n_samples, "seed": seed, "source": source, "models": described,
                                       "inputs": list(inputs.shape), "input_sum": float(inputs.double().sum())})
    start = time.perf_counter()
    bar = tqdm([(a, s) for a in archs for s in seeds[a]], desc="signatures", unit="net",
               disable=not run.shows_progress(True))
    for arch, s in bar:
        bar.set_postfix(arch=arch, seed=s)
        key = f"{arch}__{s}"
        if ckpt is not None and f"rho__{key}" in ckpt.arrays:
            a = ckpt.arrays
            sig = Signature(tuple(a[f"names__{key}"].tolist()), a[f"rho__{key}"], int(a[f"n__{key}"]),
                            tuple(int(d) for d in a[f"dims__{key}"]), tuple(a[f"kinds__{key}"].tolist()),
                            meta={"arch": arch, "init_seed": s, "seconds": float(a[f"seconds__{key}"])})
            results.setdefault(arch, []).append(sig)
            continue
        model = seeded_model(models[arch], s, in_channels=inputs.shape[1], num_classes=10)
        t0 = time.perf_counter()
        sig = nonlinearity_signature(model, inputs, n_samples=n_samples,
                                     run=RunControl(seed=seed, device=device, progress=False))
        sig.meta.update(arch=arch, init_seed=s, seconds=time.perf_counter() - t0)
        results.setdefault(arch, []).append(sig)
        if ckpt is not None:
            ckpt.save(**{f"rho__{key}": sig.rho, f"names__{key}": np.array(sig.names),
                         f"dims__{key}": np.array(sig.dims), f"kinds__{key}": np.array(sig.kinds),
                         f"n__{key}": np.array(sig.n_samples), f"seconds__{key}": np.array(sig.meta["seconds"])})
    arrays: dict[str, np.ndarray] = {}
    for arch, sigs in results.items():
        arrays[f"rho_{arch}"] = np.stack([sg.rho for sg in sigs])
        arrays[f"seeds_{arch}"] = np.array(seeds[arch])
        arrays[f"names_{arch}"] = np.array(sigs[0].names)
        arrays[f"dims_{arch}"] = np.array(sigs[0].dims)
        arrays[f"kinds_{arch}"] = np.array(sigs[0].kinds)
        arrays[f"seconds_{arch}"] = np.array([sg.meta["seconds"] for sg in sigs])
    arrays.update(archs=np.array(archs), n_samples=np.array(results[archs[0]][0].n_samples))
    if out is not None:
        save_artifact(Path(out), arrays, provenance(
            device=device, profile=profile.name, seed=seed, init_seeds={a: seeds[a] for a in archs},
            n_samples=int(arrays["n_samples"]), archs=archs, models=described, data_source=source,
            wall_time=time.perf_counter() - start, **meta))
        if ckpt is not None:
            ckpt.remove()
    return results


def load_signatures(path) -> tuple[dict, dict]:
    """Read an artifact of :func:`run_signatures`: ``({arch: [Signature per init seed]}, meta)``."""
    arrays, meta = load_artifact(path)
    if "archs" not in arrays:
        raise ValueError(f"{str(path)!r} is not a signature artifact (no 'archs' array)")
    n = int(arrays["n_samples"])
    out = {}
    for arch in arrays["archs"].tolist():
        names = tuple(arrays[f"names_{arch}"].tolist())
        dims = tuple(int(d) for d in arrays[f"dims_{arch}"])
        kinds = tuple(arrays[f"kinds_{arch}"].tolist())
        out[arch] = [Signature(names, np.asarray(r, dtype=np.float64), n, dims, kinds,
                               meta={"arch": arch, "init_seed": int(s), "seconds": float(t)})
                     for r, s, t in zip(arrays[f"rho_{arch}"], arrays[f"seeds_{arch}"],
                                        arrays[f"seconds_{arch}"])]
    return out, meta


register_loader("signatures", load_signatures)  # nadlib.results.load of the catalogue's signatures
