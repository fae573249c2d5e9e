"""Peer pruning methods the synaptic results are compared against.

* One-shot magnitude and random pruning at given per-layer sparsities (:mod:`.oneshot`).
* Gradual magnitude pruning during training (Zhu & Gupta 2017) (:mod:`.gradual`).
"""

from .gradual import GradualMagnitudePruner
from .oneshot import apply_masks, magnitude_masks, random_masks

__all__ = ["GradualMagnitudePruner", "apply_masks", "magnitude_masks", "random_masks"]
