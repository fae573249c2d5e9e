"""Training engine: a plain loop with callbacks, and checkpoints."""

from .checkpoint import Checkpointer, load_checkpoint
from .trainer import EVENTS, Trainer, TrainingDiverged, evaluate, fit

__all__ = ["EVENTS", "Checkpointer", "Trainer", "TrainingDiverged", "evaluate", "fit", "load_checkpoint"]
