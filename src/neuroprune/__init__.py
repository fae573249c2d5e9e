"""neuroprune: brain-inspired pruning for PyTorch.

Example:
    >>> import neuroprune as npr
    >>> model = npr.create_model("mlp", image_size=8)
    >>> pruner = npr.SynapticPruner(model, alpha=0.5, patience=3, check_every=50)
"""

from .baselines import GradualMagnitudePruner, apply_masks, magnitude_masks, random_masks
from .data import create_loader, dataset_info, fetch, open_user_data
from .depth import DepthPlan, DepthPruner, Translator, recover, search_cuts
from .engine import Checkpointer, TrainingDiverged, evaluate, fit
from .errors import ConfigError, DatasetError, ModelError, NeuropruneError
from .export import export_run, sparsify
from .metrics import Metrics, count_macs, count_params, measure
from .models import create_model, list_models, register_model
from .saved_models import load_model, save_model
from .sparsity_schedule import PolynomialSparsity
from .structure import compact, compact_sequential
from .synaptic import (
    ActivityTracker,
    CheckSchedule,
    Criterion,
    LowActivityRule,
    SynapticPruner,
    create_criterion,
    list_criteria,
    register_criterion,
)

__version__ = "0.1.0"

__all__ = [
    "ActivityTracker",
    "CheckSchedule",
    "Checkpointer",
    "ConfigError",
    "Criterion",
    "DatasetError",
    "DepthPlan",
    "DepthPruner",
    "GradualMagnitudePruner",
    "LowActivityRule",
    "Metrics",
    "ModelError",
    "NeuropruneError",
    "PolynomialSparsity",
    "SynapticPruner",
    "Translator",
    "TrainingDiverged",
    "apply_masks",
    "compact",
    "compact_sequential",
    "count_macs",
    "count_params",
    "create_loader",
    "create_criterion",
    "create_model",
    "dataset_info",
    "evaluate",
    "export_run",
    "fetch",
    "fit",
    "list_criteria",
    "list_models",
    "load_model",
    "magnitude_masks",
    "measure",
    "open_user_data",
    "random_masks",
    "recover",
    "register_criterion",
    "register_model",
    "save_model",
    "search_cuts",
    "sparsify",
]
