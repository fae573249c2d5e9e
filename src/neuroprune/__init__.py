"""neuroprune: brain-inspired pruning for PyTorch.

Example:
    >>> import neuroprune as npr
    >>> model = npr.create_model("mlp", image_size=8)
    >>> pruner = npr.SynapticPruner(model, alpha=0.5, patience=3, check_every=50)
"""

from ._io import load_model, save_model
from .baselines import apply_masks, magnitude_masks, random_masks
from .data import create_loader, dataset_info, fetch
from .engine import Checkpointer, TrainingDiverged, evaluate, fit
from .errors import ConfigError, DatasetError, ModelError, NeuropruneError
from .metrics import Metrics, count_macs, count_params, measure
from .models import create_model, list_models, register_model
from .synaptic import ActivityTracker, CheckSchedule, LowActivityRule, SynapticPruner, compact_sequential

__version__ = "0.1.0"

__all__ = [
    "ActivityTracker",
    "CheckSchedule",
    "Checkpointer",
    "ConfigError",
    "DatasetError",
    "LowActivityRule",
    "Metrics",
    "ModelError",
    "NeuropruneError",
    "SynapticPruner",
    "TrainingDiverged",
    "apply_masks",
    "compact_sequential",
    "count_macs",
    "count_params",
    "create_loader",
    "create_model",
    "dataset_info",
    "evaluate",
    "fetch",
    "fit",
    "list_models",
    "load_model",
    "magnitude_masks",
    "measure",
    "random_masks",
    "register_model",
    "save_model",
]
