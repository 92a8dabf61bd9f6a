"""What each chapter shows for each of the paper's five networks: ours (with sizes and device, read from
the artifacts) or the authors' published data (with its source), or nothing yet and why.

``coverage_table(chapter)`` is the table at the top of every chapter.  The artifact cells are described
from the provenance stored in the artifacts themselves (:func:`describe_artifact`), so the table cannot
drift from what the chapter loads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .results import load_artifact, result_path
from .tables import markdown_table

__all__ = ["NETWORKS", "Shown", "CHAPTERS", "describe_artifact", "coverage_table"]

#: The paper's five networks: registry name -> display name.
NETWORKS: dict[str, str] = {"logreg": "LogReg", "lenet": "LeNet", "vgg11": "VGG-11", "resnet18": "ResNet-18",
                            "densenet121": "DenseNet-121"}

_PUBLISHED = "the authors' published data (LTS4/neural-anisotropy-directions, Apache-2.0)"


@dataclass(frozen=True)
class Shown:
    """One thing a chapter shows for one network: ``what`` it is, and where it comes from: an artifact of
    ``results/`` (``artifact``), the chapter's own live run (``live``, a description), or the authors'
    published data (``published``, which table)."""

    what: str
    artifact: str | None = None
    live: str | None = None
    published: str | None = None


_GPU_MISSING = "not computed: needs a GPU (`python -m nadlib paper`)"

#: chapter -> network -> what it shows (an empty tuple: nothing, with the reason in ``_ABSENT``).
CHAPTERS: dict[int, dict[str, tuple[Shown, ...]]] = {
    1: {
        "logreg": (Shown("Fourier accuracy map", artifact="grid_logreg_paper_s2.npz"),
                   Shown("Fourier accuracy map", published="dft_accuracies.csv")),
        "lenet": (Shown("Fourier accuracy map", artifact="grid_lenet_paper_s4.npz"),
                  Shown("low-frequency block", artifact="grid_lenet_paper_band4.npz"),
                  Shown("pooling ablation", artifact="pooling_ablation_lenet.npz"),
                  Shown("Fourier accuracy map", published="dft_accuracies.csv")),
        "vgg11": (Shown("Fourier accuracy map", published="dft_accuracies.csv"),),
        "resnet18": (Shown("Fourier accuracy map", published="dft_accuracies.csv"),),
        "densenet121": (Shown("Fourier accuracy map", published="dft_accuracies.csv"),),
    },
    2: {
        "logreg": (Shown("gradient NADs", artifact="nads_logreg_gradient.npz"),
                   Shown("NADs", published="LogReg_NADs.npy")),
        "lenet": (Shown("secant NADs", artifact="nads_lenet_secant.npz"),
                  Shown("gradient NADs (contrast)", artifact="nads_lenet_gradient.npz"),
                  Shown("accuracy vs NAD index", artifact="trainability_lenet_secant.npz"),
                  Shown("NADs and accuracy vs NAD index", published="LeNet_NADs.npy, nads.csv")),
        "vgg11": (Shown("secant NADs", artifact="nads_vgg11_secant_gpu.npz"),
                  Shown("gradient NADs (contrast)", artifact="nads_vgg11_gradient.npz"),
                  Shown("NADs and accuracy vs NAD index", published="VGG11_NADs.npy, nads.csv")),
        "resnet18": (Shown("secant NADs", artifact="nads_resnet18_secant_gpu.npz"),
                     Shown("gradient NADs (contrast)", artifact="nads_resnet18_gradient.npz"),
                     Shown("accuracy vs NAD index", artifact="trainability_resnet18_secant_gpu.npz"),
                     Shown("NADs and accuracy vs NAD index", published="ResNet18_NADs.npy, nads.csv")),
        "densenet121": (Shown("secant NADs", artifact="nads_densenet121_secant_gpu.npz"),
                        Shown("gradient NADs (contrast)", artifact="nads_densenet121_gradient.npz"),
                        Shown("NADs and accuracy vs NAD index", published="DenseNet121_NADs.npy, nads.csv")),
    },
    3: {
        "logreg": (),
        "lenet": (Shown("NAD poisoning on CIFAR-10", artifact="cifar_poison_lenet_default.npz"),
                  Shown("flip, fixed epochs", artifact="cifar_flip_lenet_5k_60ep.npz"),
                  Shown("flip, equal training accuracy", artifact="cifar_flip_lenet_1k_fit.npz")),
        "vgg11": (),
        "resnet18": (),
        "densenet121": (),
    },
    4: {
        "logreg": (),
        **{net: (Shown("non-linearity signature (and its pooling-free twin)", artifact="signatures_default.npz"),)
           for net in ("lenet", "vgg11", "resnet18", "densenet121")},
    },
    5: {
        "logreg": (),
        "lenet": (Shown("NC1-NC4 on CIFAR-10 and on D(v)", live="trained in the chapter (profile sizes, CPU)"),),
        "vgg11": (),
        "resnet18": (),
        "densenet121": (),
    },
}

#: Why a chapter shows nothing for a network.
_ABSENT: dict[int, dict[str, str]] = {
    3: {"logreg": "not in the book's CIFAR-10 experiments", "vgg11": _GPU_MISSING, "resnet18": _GPU_MISSING,
        "densenet121": _GPU_MISSING},
    4: {"logreg": "no activation layer: the signature is empty"},
    5: {"logreg": "no hidden features to collapse", "vgg11": _GPU_MISSING, "resnet18": _GPU_MISSING,
        "densenet121": _GPU_MISSING},
}


def _device(meta: dict) -> str:
    return meta.get("device_name") or str(meta.get("device", "?")).upper()


def _count(n) -> str:
    return f"{int(n):,}"


def describe_artifact(arrays: dict, meta: dict) -> str:
    """A short description of an artifact's sizes and device from its provenance, e.g. ``"568 networks,
    NVIDIA H200"`` or ``"130 directions, 10,000/10,000 samples, 20 epochs, CPU"``."""
    settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
    parts = []
    if "n_networks" in meta:
        parts.append(f"{_count(meta['n_networks'])} networks")
    elif "freqs" in arrays and "accuracy" in arrays:
        parts.append(f"{len(arrays['freqs'])} directions")
    elif "names" in arrays and "test_acc" in arrays:  # the pooling ablation
        acc = np.asarray(arrays["test_acc"], float)
        parts.append(f"{len(arrays['names'])} settings x {acc.shape[1]} directions")
        if not np.isfinite(acc).all():
            parts.append(f"{int(np.isfinite(acc).sum())} of {acc.size} runs done")
    elif "archs" in meta:
        parts.append(f"one run of {len(meta['archs'])} networks")
    elif "indices" in arrays:
        parts.append(f"{len(arrays['indices'])} NAD indices")
    sizes = {k: meta.get(k, settings.get(k)) for k in ("n_train", "n_test", "epochs")}
    if sizes["n_train"] is not None:
        parts.append(f"{_count(sizes['n_train'])}/{_count(sizes['n_test'])} samples")
    if "until_train_acc" in settings and "epochs" in arrays:
        parts.append("trained to train acc. " + str(settings["until_train_acc"]) + " ("
                     + "/".join(str(int(e)) for e in arrays["epochs"]) + " epochs)")
    elif sizes["epochs"] is not None:
        parts.append(f"{sizes['epochs']} epochs")
    source = str(meta.get("data_source", ""))
    if "CIFAR-10" in source:  # the synthetic stand-in's source says "..., NOT CIFAR-10"
        parts.append("synthetic stand-in images" if "synthetic" in source else "real CIFAR-10")
    parts.append(_device(meta))
    return ", ".join(parts)


def _ours(shown: Shown) -> str | None:
    if shown.live:
        return f"{shown.what}: {shown.live}"
    if shown.artifact:
        try:
            arrays, meta = load_artifact(result_path(shown.artifact))
        except FileNotFoundError:
            return f"{shown.what}: not computed yet (`{shown.artifact}`)"
        return f"{shown.what}: {describe_artifact(arrays, meta)}"
    return None


def coverage_table(chapter: int):
    """The Markdown table of what ``chapter`` (1-5) shows for each of the paper's five networks."""
    if chapter not in CHAPTERS:
        raise ValueError(f"chapter must be one of {sorted(CHAPTERS)}, got {chapter!r}")
    rows = []
    for net, name in NETWORKS.items():
        shown = CHAPTERS[chapter][net]
        ours = [c for c in map(_ours, shown) if c]
        published = [f"{s.what} ({s.published})" for s in shown if s.published]
        if not ours:
            ours = [_ABSENT.get(chapter, {}).get(net, _GPU_MISSING)]
        rows.append([name, "; ".join(ours), "; ".join(published) or "–"])
    return markdown_table(["network", "this book (sizes, device)", "published by the authors"], rows,
                          caption=f"What this chapter shows for each network of the paper. Published: {_PUBLISHED}.")
