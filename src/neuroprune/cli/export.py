"""``neuroprune export RUN_DIR --format {safetensors,onnx}``: write a run's pruned model for deployment.

safetensors writes the weights and a JSON spec, using CSR sparse layers where they time faster
than dense at every ``--batch-sizes``; onnx writes ``model.onnx``. Options can also come from a
YAML file (:class:`ExportConfig`, ``--config``); flags override it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..config import load_config
from ..errors import ConfigError
from ._errors import friendly_errors


def _int_list(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{what} is empty")
    return values


@dataclass
class ExportConfig:
    """Options of ``neuroprune export`` (also readable from a YAML file with --config)."""

    format: str = "safetensors"
    out: str | None = None
    batch_sizes: str = "1,256"
    dense: bool = False
    threads: int | None = None
    repeats: int = 20
    rounds: int = 5
    input_shape: str | None = None

    def __post_init__(self) -> None:
        if self.format not in ("safetensors", "onnx"):
            raise ConfigError(f"format must be 'safetensors' or 'onnx', got {self.format!r}")
        for name in ("repeats", "rounds", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")


@click.command("export")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path),
              help="YAML file with any of the options below (flags override it).")
@click.option("--format", type=click.Choice(["safetensors", "onnx"]),
              help="safetensors: weights + JSON spec, CSR layers where measured faster; onnx: model.onnx "
                   "[default: safetensors].")
@click.option("--out", type=click.Path(file_okay=False), help="Export folder [default: RUN_DIR/export].")
@click.option("--batch-sizes", help="Batch sizes at which dense and CSR kernels are timed; CSR must win at all "
                                    "of them [default: 1,256].")
@click.option("--dense/--sparse", default=None, help="Keep every layer dense (no timing) [default: --sparse].")
@click.option("--threads", type=int, help="Torch threads while timing [default: torch's setting].")
@click.option("--repeats", type=int, help="Timed calls per round [default: 20].")
@click.option("--rounds", type=int, help="Interleaved timing rounds per layer [default: 5].")
@click.option("--input-shape", help="One sample's shape, e.g. 1,28,28 [default: the run's metadata].")
@friendly_errors
def export_command(run_dir: Path, config_path: Path | None, **options: Any) -> None:
    """Export the pruned model of RUN_DIR (a `neuroprune synaptic` or `depth` output folder)."""
    from ..export import export_run

    config = load_config(ExportConfig, config_path, options)
    result = export_run(
        run_dir,
        Path(config.out) if config.out else None,
        format=config.format,
        batch_sizes=_int_list(config.batch_sizes, "batch_sizes"),
        use_sparse=not config.dense,
        input_shape=_int_list(config.input_shape, "input_shape") if config.input_shape else None,
        rounds=config.rounds,
        repeats=config.repeats,
        threads=config.threads,
    )
    for name, choice in result.choices.items():
        timings = ", ".join(
            f"batch {b}: dense {choice.dense_ms[b]:.4f} ms, csr {choice.csr_ms[b]:.4f} ms" for b in choice.dense_ms
        )
        kind = f"{choice.kind} (dense below batch {choice.dense_below})" if choice.kind == "hybrid" else choice.kind
        click.echo(f"{name:12s} {kind:6s} density {choice.density:.3f}" + (f"  ({timings})" if timings else ""))
    for key, value in result.report["checks"].items():
        if value is not None:
            click.echo(f"check {key}: {value:.3g}")
    for path in result.files:
        click.echo(f"wrote {path}")
