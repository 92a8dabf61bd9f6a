"""nadlib: Neural Anisotropy Directions (Ortiz-Jimenez et al., NeurIPS 2020) in a compact library.

Data flows one way: directions -> data -> models/training -> results -> plotting/widgets -> chapters.
"""

from ._version import __version__
from .affinity import Signature, affinity_score, load_signatures, nonlinearity_signature, run_signatures
from .cifar import (CIFAR10_CLASSES, CIFAR10NotFoundError, balanced_subset, change_basis, load_cifar10,
                    poison_assignment, poison_with_nads)
from .config import PROFILE_NAMES, Profile, SignatureConfig, describe_environment, get_device, get_profile
from .data import linear_separable
from .directions import fill_symmetric, fourier_basis, fourier_direction, fourier_energy, fourier_grid
from .models import ARCHITECTURES, get_model
from .nads import NADs, estimate_nads, load_nads, split_half_stability, subspace_overlap
from .results import load_artifact, provenance, save_artifact
from .training import GridResult, TrainResult, accuracy_grid, direction_accuracy, evaluate, profile_grid, train

__all__ = [
    "__version__", "PROFILE_NAMES", "Profile", "describe_environment", "get_device", "get_profile",
    "linear_separable", "fill_symmetric", "fourier_basis", "fourier_direction", "fourier_energy",
    "fourier_grid", "ARCHITECTURES", "get_model", "load_artifact", "provenance", "save_artifact",
    "GridResult", "TrainResult", "accuracy_grid", "direction_accuracy", "evaluate", "profile_grid", "train",
    "CIFAR10_CLASSES", "CIFAR10NotFoundError", "balanced_subset", "change_basis", "load_cifar10",
    "poison_assignment", "poison_with_nads",
    "NADs", "estimate_nads", "load_nads", "split_half_stability", "subspace_overlap",
    "SignatureConfig", "Signature", "affinity_score", "nonlinearity_signature", "run_signatures", "load_signatures",
]
