"""Activity-dependent synaptic pruning (after Zhao & Zeng, 2021)."""

from ..masks import MaskedWeights
from .pruner import SynapticPruner
from .rules import LowActivityRule
from .schedule import CheckSchedule
from .tracker import CRITERIA, ActivityTracker

__all__ = [
    "CRITERIA",
    "ActivityTracker",
    "CheckSchedule",
    "LowActivityRule",
    "MaskedWeights",
    "SynapticPruner",
]
