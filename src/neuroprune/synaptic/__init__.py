"""Activity-dependent synaptic pruning (after Zhao & Zeng, 2021)."""

from ..masks import MaskedWeights
from .criteria import Criterion, create_criterion, list_criteria, register_criterion
from .pruner import SynapticPruner
from .rules import LowActivityRule
from .schedule import CheckSchedule
from .tracker import CRITERIA, ActivityTracker

__all__ = [
    "CRITERIA",
    "ActivityTracker",
    "CheckSchedule",
    "Criterion",
    "LowActivityRule",
    "MaskedWeights",
    "SynapticPruner",
    "create_criterion",
    "list_criteria",
    "register_criterion",
]
