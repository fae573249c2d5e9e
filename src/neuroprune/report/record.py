"""A finished run folder, read back for reporting: ``result.json`` plus what lies beside it.

A report renders what a run recorded and skips what it did not, so every accessor here
returns ``None`` or an empty list for a missing field instead of raising. Only a folder
that is not a run at all (no ``result.json``, or one that is not a JSON object) is an error.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RUN_CONFIG_SCHEMA
from ..errors import NeuropruneError
from ..json_files import MAX_RUN_FILE_BYTES, read_json

# Where a depth run may keep its table of candidate cuts, in the order they are tried.
_CANDIDATE_FILES = ("candidates.json", "candidates.csv")
# the fields of result.json the report reads with a type in mind; any other is shown as text
RESULT_SCHEMA = {
    "method": "string", "model": "string|null", "dataset": "string|null",
    "history": "array|null", "history[]": "object", "checks": "array|null", "checks[]": "object",
    "checks[].layers": "object", "per_layer": "array|null", "per_layer[]": "object",
    "latency_ms": "object|null", "pruner": "object|null", "cut": "object|string|null", "search": "object|null",
    "candidates": "array|object|null", "dense": "object|null", "gmp": "object|null", "processes": "object|null",
}
CANDIDATES_SCHEMA = {"candidates": "array|null", "rows": "array|null"}


@dataclass(frozen=True)
class RunRecord:
    """One run folder as the report sees it.

    Attributes:
        path: the run folder.
        label: a short name for legends and tables, unique within one report.
        result: the parsed ``result.json``.
        config: the ``config`` object of ``config.json`` (empty when there is none).
        candidates: rows of the depth run's candidate table (empty when there is none).
    """

    path: Path
    label: str
    result: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    candidates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def method(self) -> str:
        """``synaptic``, ``depth`` or whatever the run wrote; ``unknown`` when absent."""
        return str(self.result.get("method", "unknown"))


def load_run(path: str | Path, label: str | None = None) -> RunRecord:
    """Read a run folder written by ``neuroprune synaptic`` or ``neuroprune depth``.

    Args:
        path: the folder holding ``result.json``.
        label: name used in legends; the folder name by default.

    Returns:
        The run, with its config and candidate table when the folder has them.

    Raises:
        NeuropruneError: the folder does not exist, has no ``result.json``, or that file
            is not a JSON object. The message names the folder.

    Example:
        >>> run = load_run("runs/mlp_mnist")  # doctest: +SKIP
        >>> run.method
        'synaptic'
    """
    folder = Path(path)
    if not folder.is_dir():
        raise NeuropruneError(f"run folder {folder} does not exist (or is not a folder)")
    result_path = folder / "result.json"
    if not result_path.is_file():
        raise NeuropruneError(
            f"run folder {folder} has no result.json: it is not a finished neuroprune run "
            "(a run writes result.json when it ends: run `neuroprune synaptic` or `neuroprune depth` with --out FOLDER)"
        )
    result = _read_json_object(result_path, RESULT_SCHEMA)
    config_path = folder / "config.json"
    config: dict[str, Any] = {}
    if config_path.is_file():
        saved = _read_json_object(config_path, RUN_CONFIG_SCHEMA)
        config = saved.get("config", saved) if isinstance(saved.get("config", saved), dict) else {}
    return RunRecord(
        path=folder,
        label=label or folder.resolve().name,
        result=result,
        config=config,
        candidates=_candidates(folder, result),
    )


def load_runs(paths: list[str | Path]) -> list[RunRecord]:
    """:func:`load_run` for each folder, with labels made unique (``run``, ``other/run``)."""
    folders = [Path(p).resolve() for p in paths]
    if not folders:
        raise NeuropruneError("no run folders given: pass at least one folder that holds a result.json")
    labels = [f.name for f in folders]
    for i, folder in enumerate(folders):
        if labels.count(folder.name) > 1:
            labels[i] = f"{folder.parent.name}/{folder.name}"
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        # the same folder given twice still gets two distinct labels
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            labels[i] = f"{label} ({seen[label]})"
    return [load_run(folder, label) for folder, label in zip(folders, labels, strict=True)]


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None for missing, non-numeric, NaN or infinite values.

    Numeric strings count as numbers, because candidate tables may come from a CSV file.
    """
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def known_pairs(pairs: Iterable[tuple[Any, Any]]) -> list[tuple[float, float]]:
    """The pairs whose two values are both numbers (see :func:`number`), as floats."""
    kept = []
    for x, y in pairs:
        fx, fy = number(x), number(y)
        if fx is not None and fy is not None:
            kept.append((fx, fy))
    return kept


def metric(result: dict[str, Any], name: str, side: str, batch: str = "batch_1") -> float | None:
    """A base/pruned metric of a depth run, whichever spelling the run used.

    Tries ``{name}_{side}``, ``{name}_ms_{side}``, ``{name}_{side}_ms`` and nested
    ``result[name][side]`` (also under ``{name}_ms``). A latency saved per batch size
    (``{"batch_1": 0.4, "batch_64": 9.1}``) gives its ``batch`` entry; a measurement
    object gives its ``median_ms``.

    Args:
        result: a parsed ``result.json``.
        name: ``accuracy``, ``params``, ``macs`` or ``latency``.
        side: ``base`` or ``pruned``.
        batch: which batch size of a per-batch latency to return.
    """
    candidates = [result.get(f"{name}_{side}"), result.get(f"{name}_ms_{side}"), result.get(f"{name}_{side}_ms")]
    for key in (name, f"{name}_ms"):
        if isinstance(result.get(key), dict):
            candidates.append(result[key].get(side))
    for value in candidates:
        if isinstance(value, dict):
            value = value.get(batch, value.get("median_ms", value.get("ms")))
        if number(value) is not None:
            return number(value)
    return None


def latency_batches(result: dict[str, Any]) -> list[str]:
    """The batch keys (``batch_1``, ``batch_64``, ...) of a depth run's per-batch latencies."""
    keys: list[str] = []
    for key in ("latency_ms_base", "latency_ms_pruned", "latency_base", "latency_pruned"):
        value = result.get(key)
        if isinstance(value, dict):
            keys += [k for k in value if k.startswith("batch_") and k not in keys]
    return sorted(keys, key=lambda k: int(k.removeprefix("batch_")) if k.removeprefix("batch_").isdigit() else 0)


def _read_json(path: Path, schema: dict[str, str], root: str = "object") -> Any:
    return read_json(path, what=f"the {path.name} a neuroprune run writes", max_bytes=MAX_RUN_FILE_BYTES,
                     schema=schema, root=root)


def _read_json_object(path: Path, schema: dict[str, str]) -> dict[str, Any]:
    return _read_json(path, schema)


def _candidates(folder: Path, result: dict[str, Any]) -> list[dict[str, Any]]:
    """The candidate table from result.json (``candidates``) or a file beside it."""
    rows = result.get("candidates")
    if isinstance(rows, dict):
        rows = rows.get("rows")
    if isinstance(rows, list):
        return [r for r in rows if isinstance(r, dict)]
    for name in _CANDIDATE_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if name.endswith(".json"):
            data = _read_json(path, CANDIDATES_SCHEMA, root="object|array")
            data = data.get("candidates", data.get("rows")) if isinstance(data, dict) else data
            return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
        with open(path, newline="") as handle:
            return [dict(row) for row in csv.DictReader(handle)]
    return []
