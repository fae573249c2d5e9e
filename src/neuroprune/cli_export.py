"""``neuroprune export RUN_DIR --format {safetensors,onnx}``: write a run's pruned model for deployment.

Register on the main group with ``main.add_command(export_command)``.
"""

from __future__ import annotations

from pathlib import Path

import click

from ._cli_errors import friendly_errors
from .errors import ConfigError


def _int_list(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{what} is empty")
    return values


@click.command("export")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["safetensors", "onnx"]), default="safetensors", show_default=True,
              help="safetensors: weights + JSON spec, CSR layers where measured faster; onnx: model.onnx.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Export folder [default: RUN_DIR/export].")
@click.option("--batch-sizes", default="1,256", show_default=True,
              help="Batch sizes at which dense and CSR kernels are timed; CSR must win at all of them.")
@click.option("--dense", "is_dense", is_flag=True, help="Keep every layer dense (no timing).")
@click.option("--threads", type=int, help="Torch threads while timing [default: torch's setting].")
@click.option("--repeats", type=int, default=20, show_default=True, help="Timed calls per round.")
@click.option("--rounds", type=int, default=5, show_default=True, help="Interleaved timing rounds per layer.")
@click.option("--input-shape", help="One sample's shape, e.g. 1,28,28 [default: the run's metadata].")
@friendly_errors
def export_command(
    run_dir: Path,
    fmt: str,
    out: Path | None,
    batch_sizes: str,
    is_dense: bool,
    threads: int | None,
    repeats: int,
    rounds: int,
    input_shape: str | None,
) -> None:
    """Export the pruned model of RUN_DIR (a `neuroprune synaptic` or `depth` output folder)."""
    from .export import export_run

    result = export_run(
        run_dir,
        out,
        format=fmt,
        batch_sizes=_int_list(batch_sizes, "--batch-sizes"),
        use_sparse=not is_dense,
        input_shape=_int_list(input_shape, "--input-shape") if input_shape else None,
        rounds=rounds,
        repeats=repeats,
        threads=threads,
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
