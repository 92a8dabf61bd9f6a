"""NADs: the principal directions of the input gradients of randomly initialised networks of one architecture.

One folder for everything that estimates them:

* :mod:`nadlib.nads.estimate` -- :func:`estimate_nads` (secant or gradient, streaming, resumable, early stop on
  split-half :class:`Stability`), :func:`nad_statistics` (one chunk of an estimate), :class:`NADs`
  (save / load / overlap);
* :mod:`nadlib.nads.stats` -- mergeable float64 gradient statistics, split-half stability, subspace overlap;
* :mod:`nadlib.nads.input_gradients` -- secant and autograd input gradients of any model (several networks
  per forward on CUDA);
* :mod:`nadlib.nads.lenet_secant` -- the exact, locality-exploiting secant path of nadlib's LeNets.

The public names are importable from here and from ``nadlib`` itself.
"""

from .estimate import (MAX_NETWORKS, METHODS, NADs, Stability, estimate_nads, load_nads, nad_run_settings,
                       nad_statistics, nads_from_statistics, network_seed)
from .stats import NADStatistics, split_half_stability, subspace_overlap

__all__ = ["NADs", "Stability", "estimate_nads", "load_nads", "subspace_overlap", "split_half_stability",
           "network_seed", "METHODS", "MAX_NETWORKS", "NADStatistics", "nad_statistics", "nads_from_statistics",
           "nad_run_settings"]
