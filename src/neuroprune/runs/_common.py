"""Pieces every run shares: seeding, optimizers, run metadata, history files."""

from __future__ import annotations

import csv
import io
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import distributed as dist_utils
from ..config import to_dict
from ..engine import EpochLRScheduler
from ..errors import ConfigError
from ..storage import atomic_write_bytes, write_json

# test-set batch of every run: large batches evaluate fastest, and 1000 images fit any model here
EVAL_BATCH = 1000


def seeded_model(factory: Any, seed: int) -> nn.Module:
    """Call ``factory()`` right after seeding torch, so every run starts from the same weights."""
    torch.manual_seed(seed)
    return factory()


def make_optimizer(model: nn.Module, name: str, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """SGD with momentum or Adam over the model's trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def lr_schedule_callbacks(optimizer: torch.optim.Optimizer, schedule: str, epochs: int) -> list[Any]:
    """Callbacks that apply ``schedule`` ('constant' or 'cosine' decay to 0 over ``epochs``)."""
    if schedule == "constant":
        return []
    return [EpochLRScheduler(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs))]


def check_global_batch(batch_size: int, world: int) -> None:
    """Every process takes an equal share of each global batch, so it must divide evenly."""
    if batch_size % world:
        raise ConfigError(f"batch_size ({batch_size}, the global batch) must be divisible by the {world} processes")


def start_run_folder(out: Path, config: Any, world: int) -> None:
    """On rank 0: create the run folder and save the resolved config beside the results."""
    if dist_utils.is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {"config": to_dict(config), "environment": environment(),
                                         "processes": {"world_size": world}})


def environment() -> dict[str, Any]:
    """Versions, platform, thread count and git revision, saved beside every result."""
    versions: dict[str, str | None] = {}
    for package in ("neuroprune", "torch", "numpy", "scikit-learn", "safetensors"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "versions": versions,
        "git_revision": _git_revision(),
    }


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def write_history_csv(path: Path, runs: dict[str, list[dict[str, Any]]]) -> None:
    """One row per (run, epoch); columns are the union of the records' keys."""
    columns = ["run"]
    for history in runs.values():
        for record in history:
            columns += [key for key in record if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for run, history in runs.items():
        for record in history:
            writer.writerow({"run": run, **record})
    atomic_write_bytes(path, buffer.getvalue().encode())
