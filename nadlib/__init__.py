"""nadlib: Neural Anisotropy Directions (Ortiz-Jimenez et al., NeurIPS 2020) in a compact library.

The modules are layered: each imports only from the floors below it.  The one map of them, floor by floor, is
the table "The library: module map" in the repository's README.md (tests/test_module_map.py checks that it
lists every module and that no import goes up a floor).  The science a chapter calls is importable from
here; its figures and widgets live in :mod:`nadlib.book`.
"""

from ._version import __version__
from .affinity import Signature, affinity_score, nonlinearity_signature
from .budget import Budgeted, free_cores, use_free_cores, within_budget
from .bases import (as_nad_basis, change_basis, flip_basis, fourier_energy_by_radius, nad_coefficients, nad_energy,
                    poison_assignment, poison_with_nads)
from .cifar10 import CIFAR10NotFoundError, balanced_subset, cifar_data, load_cifar10, synthetic_cifar10
from .collapse import (CollapseMetrics, CollapseRun, CollapseTracker, collapse_metrics, penultimate_layer,
                       run_collapse, separable_data)
from .config import (CIFAR10_CLASSES, PAPER_RECIPE, PROFILE_NAMES, Profile, Recipe, SignatureConfig, describe_environment, get_device,
                     get_profile)
from .control import RunControl, RunStopped
from .book.coverage import coverage_table
from .data import linear_separable
from .directions import fill_symmetric, fourier_basis, fourier_direction, fourier_energy, fourier_grid
from .experiments import CIFARHyperParams, load_basis, nad_trainability, run_flip, run_poison_sweep
from .grid import GridResult, accuracy_grid, profile_grid
from .models import ARCHITECTURES, REGISTRY, Architecture, get_model, register_architecture, seeded_model
from .pooling import PoolFreeLeNet, ablation_table, combine_ablations, run_pooling_ablation
from .nads import (NADs, NADStatistics, Stability, estimate_nads, load_nads, nad_statistics, nads_from_statistics,
                   split_half_stability, subspace_overlap)
from .results import (ResultMissingError, ResultNotAvailableError, caption as result_caption, load as load_result,
                      load_artifact, loaded as loaded_results, provenance, result_path, results_dir, save_artifact,
                      set_results_dir)
from . import catalogue, results  # noqa: E402  (nadlib.results.load, nadlib.catalogue.CATALOGUE)
from .signature_runs import load_signatures, run_signatures
from .tables import claims_not_checked, glue, markdown_table
from .training import TrainResult, direction_accuracy, evaluate, train

__all__ = [
    "__version__", "PAPER_RECIPE", "Recipe", "RunControl", "RunStopped", "PROFILE_NAMES", "Profile", "describe_environment",
    "get_device", "get_profile",
    "linear_separable", "fill_symmetric", "fourier_basis", "fourier_direction", "fourier_energy",
    "fourier_grid", "ARCHITECTURES", "REGISTRY", "Architecture", "register_architecture", "get_model",
    "seeded_model", "load_artifact", "provenance", "results_dir",
    "result_path", "ResultNotAvailableError", "ResultMissingError", "load_result", "loaded_results",
    "result_caption", "set_results_dir", "catalogue", "results",
    "save_artifact", "markdown_table", "GridResult", "TrainResult", "accuracy_grid", "direction_accuracy",
    "evaluate", "profile_grid", "train", "CIFAR10_CLASSES", "CIFAR10NotFoundError", "balanced_subset",
    "cifar_data", "load_cifar10", "synthetic_cifar10", "as_nad_basis", "change_basis", "flip_basis",
    "fourier_energy_by_radius", "nad_coefficients", "nad_energy", "poison_assignment", "poison_with_nads",
    "CIFARHyperParams", "load_basis", "nad_trainability", "run_flip", "run_poison_sweep",
    "NADs", "Stability", "estimate_nads", "load_nads", "split_half_stability", "subspace_overlap",
    "CollapseMetrics", "CollapseRun", "CollapseTracker", "collapse_metrics", "penultimate_layer",
    "run_collapse", "separable_data",
    "NADStatistics", "nad_statistics", "nads_from_statistics",
    "coverage_table", "PoolFreeLeNet", "ablation_table", "combine_ablations", "run_pooling_ablation",
    "Budgeted", "within_budget", "free_cores", "use_free_cores", "claims_not_checked", "glue",
    "SignatureConfig", "Signature", "affinity_score", "nonlinearity_signature", "run_signatures", "load_signatures",
]
