"""Training engine: a plain loop with callbacks, and checkpoints."""

from .checkpoint import Checkpointer, load_checkpoint
from .trainer import EVENTS, EpochLRScheduler, Trainer, TrainingDiverged, evaluate, fit

__all__ = ["EVENTS", "Checkpointer", "EpochLRScheduler", "Trainer", "TrainingDiverged", "evaluate", "fit", "load_checkpoint"]
