"""Training engine: a plain loop with callbacks, and checkpoints to resume from."""

from .checkpoint import Checkpointer, load_checkpoint, resume
from .trainer import EVENTS, EpochLRScheduler, Trainer, TrainingDiverged, evaluate, fit

__all__ = [
    "EVENTS",
    "Checkpointer",
    "EpochLRScheduler",
    "Trainer",
    "TrainingDiverged",
    "evaluate",
    "fit",
    "load_checkpoint",
    "resume",
]
