"""The connection masks, now :mod:`neuroprune.masks` (shared by synaptic pruning and the baselines); this path
re-exports them."""

from ..masks import MaskedWeights, MaskViews, Prunable, prunable_layers

__all__ = ["MaskViews", "MaskedWeights", "Prunable", "prunable_layers"]
