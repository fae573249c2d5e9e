"""The Zhao & Zeng (2021) reproduction page, built from ``benchmarks/synaptic.py``'s JSON.

The benchmark's runs hold, per (data set, model, seed), the dense network, the synaptic
run and the magnitude and random peers (see that script's docstring). This module sets
their means over seeds beside the paper's claims and the Han et al. (2015) anchors.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from ..errors import NeuropruneError
from . import plots
from ._provenance import Provenance, provenance_lines
from .claims import HAN2015, ZHAO2021
from .html import FigureRef, Page, Section
from .record import known_pairs, number
from .tables import MISSING, Table, count, decimal, percent

METHODS = ("dense", "synaptic", "magnitude", "random")
MODEL_NAMES = {"mlp": "LeNet-300-100", "lenet5": "LeNet-5"}
DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
# Han et al.'s anchors, by the (data set, model) of ours that matches their setting
HAN_SETTINGS = {("mnist", "mlp"): HAN2015.claims[0], ("mnist", "lenet5"): HAN2015.claims[1]}

Group = tuple[str, str]


def zhao2021_page(payload: dict[str, Any], provenance: Provenance) -> Page:
    """The reproduction page of Zhao & Zeng (2021).

    Args:
        payload: the parsed ``synaptic.json`` of ``benchmarks/synaptic.py``.
        provenance: how the numbers were obtained; figures go to ``provenance.out/figures``.

    Raises:
        NeuropruneError: the payload has no ``runs`` list.
    """
    if not isinstance(payload.get("runs"), list):
        raise NeuropruneError(f"{provenance.results} is not benchmarks/synaptic.py output: it has no 'runs' list")
    groups = _groups(payload["runs"])
    out = provenance.out
    page = Page(
        "Reproduction: Zhao & Zeng (2021), activity-dependent synaptic pruning",
        intro=[f"Paper: {ZHAO2021.citation}, doi {ZHAO2021.doi}.", ZHAO2021.caveat,
               *provenance_lines(provenance, payload)],
    )
    page.sections.append(Section("The paper's claims beside our measurements", tables=[_claims_table(groups)]))
    page.sections.append(Section("Anchor: magnitude pruning, Han et al. (2015)", tables=[_han_table(groups)]))
    peers = Section("Peers: dense, synaptic, magnitude and random pruning", tables=[_peer_table(groups)])
    peers.figures += _figures(groups, out)
    page.sections.append(peers)
    overhead = _overhead_table(groups)
    if overhead.rows:
        page.sections.append(Section("Training-step overhead of the pruner", tables=[overhead]))
    return page


def _groups(runs: list[dict[str, Any]]) -> dict[Group, list[dict[str, Any]]]:
    groups: dict[Group, list[dict[str, Any]]] = {}
    for run in runs:
        if isinstance(run, dict):
            groups.setdefault((str(run.get("dataset")), str(run.get("model"))), []).append(run)
    return groups


def _name(group: Group) -> str:
    dataset, model = group
    return f"{MODEL_NAMES.get(model, model)} on {DATASET_NAMES.get(dataset, dataset)}"


def _values(runs: list[dict[str, Any]], method: str, key: str) -> list[float]:
    values = [number((run.get(method) or {}).get(key)) for run in runs]
    return [v for v in values if v is not None]


def _mean(values: list[float]) -> float | None:
    return statistics.mean(values) if values else None


def _mean_std(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    if not values:
        return MISSING
    if len(values) == 1:
        return f"{scale * values[0]:.{digits}f}"
    return f"{scale * statistics.mean(values):.{digits}f} ± {scale * statistics.stdev(values):.{digits}f}"


def _claims_table(groups: dict[Group, list[dict[str, Any]]]) -> Table:
    table = Table("Zhao & Zeng (2021) claims and our numbers", ["setting", "quantity", "paper", "ours", "agreement"],
                  note="Ours: mean over seeds of the benchmark; 'dense' is the same network, seed and batch order "
                       "trained without pruning.")
    pruned_claim, accuracy_claim, speed_claim = ZHAO2021.claims[:3]
    low, high = pruned_claim.numbers["low"], pruned_claim.numbers["high"]
    for group, runs in groups.items():
        pruned = _mean(_values(runs, "synaptic", "pruned_fraction"))
        if pruned is None:
            verdict = MISSING
        else:
            verdict = "within the range" if low <= pruned <= high else ("below" if pruned < low else "above") + " the range"
        table.rows.append([_name(group), pruned_claim.quantity, pruned_claim.shown, percent(pruned, 1), verdict])
    for group, runs in groups.items():
        table.rows.append([_name(group), accuracy_claim.quantity, accuracy_claim.shown, *_accuracy_vs_dense(runs)])
    for group, runs in groups.items():
        table.rows.append([_name(group), speed_claim.quantity, speed_claim.shown, *_learning_speed(runs)])
    measured = {dataset for dataset, _ in groups}
    for claim in ZHAO2021.claims[3:]:
        dataset = next((k for k, v in DATASET_NAMES.items() if v == claim.setting), claim.setting)
        ours = "; ".join(f"{MODEL_NAMES.get(m, m)}: {_mean_std(_values(runs, 'synaptic', 'test_accuracy'))}%"
                         for (d, m), runs in groups.items() if d == dataset)
        table.rows.append([claim.setting, claim.quantity, claim.shown,
                           ours if dataset in measured else "not run (not in the benchmark's --datasets)",
                           "cannot compare: the paper's figure is unknown"])
    return table


def _accuracy_vs_dense(runs: list[dict[str, Any]]) -> list[str]:
    pairs = known_pairs((r["synaptic"].get("test_accuracy"), r["dense"].get("test_accuracy"))
                        for r in runs if isinstance(r.get("synaptic"), dict) and isinstance(r.get("dense"), dict))
    if not pairs:
        return [MISSING, MISSING]
    pruned, dense = statistics.mean(p[0] for p in pairs), statistics.mean(p[1] for p in pairs)
    higher = sum(s > d for s, d in pairs)
    ours = f"{100 * pruned:.2f}% vs {100 * dense:.2f}% ({100 * (pruned - dense):+.2f} pt)"
    return [ours, f"{'yes' if pruned > dense else 'no'} (pruned higher in {higher} of {len(pairs)} seeds)"]


def _learning_speed(runs: list[dict[str, Any]]) -> list[str]:
    """Epoch at which each run first reached the dense run's final accuracy."""
    def epochs(method: str) -> list[float | None]:
        return [number((r.get(method) or {}).get("epochs_to_dense_final_accuracy")) for r in runs]

    synaptic, dense = epochs("synaptic"), epochs("dense")
    shown = ", ".join("never" if e is None else f"{e:.0f}" for e in synaptic)
    reference = ", ".join("never" if e is None else f"{e:.0f}" for e in dense)
    faster = sum(s is not None and (d is None or s < d) for s, d in zip(synaptic, dense))
    slower = sum(s is None or (d is not None and s > d) for s, d in zip(synaptic, dense))
    ours = f"epoch reaching the dense final accuracy: synaptic {shown}; dense {reference}"
    verdict = "yes" if faster > slower else "no"
    return [ours, f"{verdict} (pruned faster in {faster}, slower in {slower} of {len(runs)} seeds)"]


def _han_table(groups: dict[Group, list[dict[str, Any]]]) -> Table:
    table = Table(
        "Han et al. (2015) anchors and our peers in the same setting",
        ["setting", "Han et al.: pruned; error dense → pruned", "ours magnitude: pruned; error dense → pruned",
         "ours synaptic: pruned; error"],
        note="Our magnitude peer is pruned to the synaptic run's per-layer sparsity (not Han et al.'s 92%) and "
             "retrained briefly at 0.1x the learning rate; Han et al. prune iteratively and retrain longer. "
             "Errors are test errors, mean over seeds.",
    )
    for group, claim in HAN_SETTINGS.items():
        runs = groups.get(group)
        if not runs:
            table.rows.append([claim.setting, claim.shown, f"not run (not in the benchmark's --models: {group[1]})", MISSING])
            continue
        table.rows.append([claim.setting, claim.shown, _pruned_error(runs, "magnitude"), _pruned_error(runs, "synaptic")])
    return table


def _pruned_error(runs: list[dict[str, Any]], method: str) -> str:
    pruned = _mean(_values(runs, method, "pruned_fraction"))
    error = _mean([1 - a for a in _values(runs, method, "test_accuracy")])
    dense_error = _mean([1 - a for a in _values(runs, "dense", "test_accuracy")])
    if method == "synaptic":
        return f"{percent(pruned, 1)}; {percent(error)}"
    return f"{percent(pruned, 1)}; {percent(dense_error)} → {percent(error)}"


def _peer_table(groups: dict[Group, list[dict[str, Any]]]) -> Table:
    table = Table(
        "All methods, mean ± std over seeds",
        ["setting", "method", "seeds", "test accuracy %", "pruned %", "params", "MACs", "accuracy before retrain %",
         "train s"],
        note="Params and MACs of the compacted model (dead units removed). Magnitude and random are pruned to the "
             "synaptic run's per-layer sparsity, then retrained.",
    )
    for group, runs in groups.items():
        for method in METHODS:
            if not any(isinstance(r.get(method), dict) for r in runs):
                continue
            acc = _values(runs, method, "test_accuracy")
            table.rows.append([
                _name(group), method, str(len(acc)), _mean_std(acc),
                "0.0" if method == "dense" else _mean_std(_values(runs, method, "pruned_fraction"), digits=1),
                count(_mean(_values(runs, method, "params"))), count(_mean(_values(runs, method, "macs"))),
                _mean_std(_values(runs, method, "accuracy_before_retrain")),
                decimal(_mean(_values(runs, method, "train_seconds")), 1),
            ])
    return table


def _overhead_table(groups: dict[Group, list[dict[str, Any]]]) -> Table:
    table = Table("Pruner overhead per training step (median of interleaved repeats, same process)",
                  ["setting", "plain ms/step", "with pruner ms/step", "overhead"])
    for group, runs in groups.items():
        o = runs[0].get("overhead")
        if isinstance(o, dict):
            overhead = number(o.get("overhead"))
            table.rows.append([_name(group), decimal(o.get("plain_ms_per_step"), 2),
                               decimal(o.get("pruner_ms_per_step"), 2),
                               MISSING if overhead is None else f"{100 * overhead:+.1f}%"])
    return table


def _figures(groups: dict[Group, list[dict[str, Any]]], out: Path) -> list[FigureRef]:
    figures = []
    lines = []
    for i, (group, runs) in enumerate(groups.items()):
        for method, dashed in (("synaptic", False), ("dense", True)):
            curves = [r[method]["accuracy_per_epoch"] for r in runs
                      if isinstance(r.get(method), dict) and r[method].get("accuracy_per_epoch")]
            if curves:
                length = min(map(len, curves))
                mean = [100 * statistics.mean(c[e] for c in curves) for e in range(length)]
                lines.append(plots.Line(f"{group[1]}/{group[0]}: {method}", list(range(1, length + 1)), mean, i, dashed))
    if lines:
        path = plots.line_chart(out / "figures" / "zhao2021-accuracy.png", lines,
                                "Test accuracy per epoch (mean over seeds)", "epoch", "test accuracy (%)")
        figures.append(FigureRef("figures/" + path.name, "Synaptic pruning (solid) vs the same network trained "
                                                         "without pruning (dashed), mean over seeds."))
    categories = [f"{m}/{d}" for d, m in groups]
    bars = {method: [100 * (1 - (_mean(_values(runs, method, "test_accuracy")) or float("nan"))) for runs in groups.values()]
            for method in METHODS}
    if categories:
        path = plots.bar_chart(out / "figures" / "zhao2021-error.png", categories, bars,
                               "Test error by method (mean over seeds)", "test error (%)")
        figures.append(FigureRef("figures/" + path.name, "Test error of every method; lower is better."))
    return figures
