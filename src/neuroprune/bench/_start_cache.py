"""Trained starting points shared by the commands of one benchmark, trained once per setting.

The small-budget regime prunes a network that was already trained. A study is run as many
commands (one seed, one method each), and every command must start from the *same* trained
weights; training them again in each command would cost more than the pruning itself. The
first command trains and stores them (safetensors and a JSON summary, written atomically under
a lock); later ones read them. The key is a hash of everything the training depends on.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from neuroprune.storage import atomic_write_bytes, write_json

from ._common import waiting_lock

CACHE = Path(tempfile.gettempdir()) / "neuroprune-benchmark-starts"

Start = tuple[dict[str, torch.Tensor], dict[str, Any]]


def start_key(**recipe: Any) -> str:
    """A short hash of ``recipe`` (JSON-serialisable) and the torch version."""
    text = json.dumps({**recipe, "torch": torch.__version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_start(key: str, train: Callable[[], Start], cache: Path | None = None) -> Start:
    """The weights and summary stored under ``key`` in ``cache`` (default :data:`CACHE`), or ``train()``'s,
    stored there for the next command."""
    cache = cache or CACHE
    cache.mkdir(parents=True, exist_ok=True)
    weights, summary = cache / f"{key}.safetensors", cache / f"{key}.json"
    with waiting_lock(cache / f"{key}.lock"):  # a second command waits rather than training the same start again
        if weights.is_file() and summary.is_file():
            return load_safetensors(weights.read_bytes()), json.loads(summary.read_text())
        state, facts = train()
        atomic_write_bytes(weights, save_safetensors({k: v.contiguous() for k, v in state.items()}))
        write_json(summary, facts)
        return state, facts

