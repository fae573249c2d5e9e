"""Activity-dependent synaptic pruning (after Zhao & Zeng, 2021)."""

from .compact import compact_sequential
from .masks import MaskedWeights, plain_state_dict
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
    "compact_sequential",
    "plain_state_dict",
]
