"""Neuroplasticity-based depth pruning (after Camacho et al., 2022).

Whole layers or blocks between an origin and a destination are cut out in one go and a
small translator (pooling + 1x1 conv + ReLU) bridges the gap; the network then recovers.

Example:
    >>> from neuroprune.depth import DepthPruner, recover
    >>> pruner = DepthPruner(model, example_inputs=x)
    >>> small = pruner.plan(cut=("features.13", "features.34")).apply()   # model is untouched
    >>> phases = recover(small, train_loader, translator_epochs=5, finetune_epochs=5, teacher=model)
"""

from .blocks import BlockSpan, Unit, boundaries, find_spans, probe
from .config import DepthConfig, TrainConfig
from .graph_spec import from_graph, load_graph_model, save_graph_model, to_graph
from .greedy import GreedyResult, greedy_cuts, segments
from .init import init_translator
from .pruner import DepthPlan, DepthPruner
from .recovery import (
    PhaseResult,
    fine_tune,
    fine_tune_pruning_units,
    recover,
    train_translators,
    translator_modules,
)
from .search import Budgets, SearchResult, score, search_cuts
from .surgery import cut_model
from .translator import Translator, describe_translator, pooling_for

__all__ = [
    "BlockSpan",
    "Budgets",
    "DepthConfig",
    "DepthPlan",
    "DepthPruner",
    "GreedyResult",
    "PhaseResult",
    "SearchResult",
    "TrainConfig",
    "Translator",
    "Unit",
    "boundaries",
    "cut_model",
    "describe_translator",
    "find_spans",
    "fine_tune",
    "fine_tune_pruning_units",
    "from_graph",
    "greedy_cuts",
    "init_translator",
    "load_graph_model",
    "pooling_for",
    "probe",
    "recover",
    "save_graph_model",
    "score",
    "search_cuts",
    "segments",
    "to_graph",
    "train_translators",
    "translator_modules",
]
