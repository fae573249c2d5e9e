"""The Zhao & Zeng (2021) reproduction page, built from the synaptic suite's ``--sparsities`` JSON.

Each run of that file holds, per (data set, model, seed), the dense network and, at every
target sparsity, the synaptic run and its gradual magnitude pruning (GMP) peer: same model,
recipe, epochs, seed, batch order and cubic sparsity schedule (see :mod:`neuroprune.bench.synaptic`).
This module sets their means over seeds beside the paper's claims and Han et al.'s anchors.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

from ..errors import NeuropruneError
from . import plots
from ._provenance import Provenance, provenance_lines
from .claims import HAN2015, ZHAO2021, ZHU2017
from .html import FigureRef, Page, Section
from .record import known_pairs, number
from .tables import MISSING, Table, count, percent

METHODS = ("dense", "synaptic", "gmp")
LABELS = {"dense": "dense", "synaptic": "synaptic", "gmp": "GMP"}
MODEL_NAMES = {"mlp": "LeNet-300-100", "lenet5": "LeNet-5"}
DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
# Han et al.'s anchors, by the (data set, model) of ours that matches their setting
HAN_SETTINGS = {("mnist", "mlp"): HAN2015.claims[0], ("mnist", "lenet5"): HAN2015.claims[1]}
PRODUCER = "python -m neuroprune.bench synaptic --sparsities 0.9 0.95 0.98"  # or python benchmarks/synaptic.py

Group = tuple[str, str]
Runs = list[dict[str, Any]]


def zhao2021_page(payload: dict[str, Any], provenance: Provenance) -> Page:
    """The reproduction page of Zhao & Zeng (2021).

    Args:
        payload: the parsed JSON that the synaptic suite (:mod:`neuroprune.bench.synaptic`)
            writes with ``--sparsities ...``.
        provenance: how the numbers were obtained; figures go to ``provenance.out/figures``.

    Raises:
        NeuropruneError: the payload has no runs, or runs without ``targets`` (another
            format of the script); the message names the command that writes the right file.
    """
    groups = _groups(payload, provenance.results)
    page = Page(
        "Reproduction: Zhao & Zeng (2021), activity-dependent synaptic pruning",
        intro=[f"Paper: {ZHAO2021.citation}, doi {ZHAO2021.doi}.", ZHAO2021.caveat,
               "Peers: dense, the same network trained without pruning, and gradual magnitude pruning (GMP): "
               f"{ZHU2017.citation}. GMP shares the synaptic run's model, recipe, epochs, seed, batch order and cubic "
               "sparsity schedule, so the two differ only in which connections they remove.",
               *provenance_lines(provenance, payload)],
    )
    page.sections.append(Section("The paper's claims beside our measurements", tables=[_claims_table(groups)]))
    page.sections.append(Section("Anchor: magnitude pruning, Han et al. (2015)", tables=[_han_table(groups)]))
    peers = Section("Peers: dense, synaptic and gradual magnitude pruning", tables=[_peer_table(groups)])
    peers.figures += _figures(groups, provenance.out)
    page.sections.append(peers)
    return page


def _groups(payload: dict[str, Any], path: Path) -> dict[Group, Runs]:
    runs = payload.get("runs")
    hint = f"build the page from the JSON that `{PRODUCER}` writes (or run `neuroprune reproduce zhao2021`)"
    if not isinstance(runs, list) or not runs:
        raise NeuropruneError(f"{path} is not the synaptic suite's --sparsities output: it has no 'runs'; {hint}")
    if not all(isinstance(run, dict) and isinstance(run.get("targets"), dict) for run in runs):
        raise NeuropruneError(f"{path} has runs without 'targets': it is an older format of the synaptic suite or its "
                              f"--units output, not --sparsities output; {hint}")
    groups: dict[Group, Runs] = {}
    for run in runs:
        groups.setdefault((str(run.get("dataset")), str(run.get("model"))), []).append(_with_synaptic(run))
    return groups


def _with_synaptic(run: dict[str, Any]) -> dict[str, Any]:
    """``run`` with a ``synaptic`` entry at every target.

    The suite names its synaptic runs ``synaptic:CRITERION`` (several criteria can share a
    file); older files say ``synaptic``. The page shows the run of the config's criterion,
    else the first one.
    """
    config = run.get("config")
    criterion = config.get("criterion") if isinstance(config, dict) else None
    targets = {}
    for target, row in run["targets"].items():
        if isinstance(row, dict) and "synaptic" not in row:
            named = [key for key in row if isinstance(key, str) and key.startswith("synaptic:")]
            if named:
                chosen = f"synaptic:{criterion}" if f"synaptic:{criterion}" in named else named[0]
                row = {**row, "synaptic": row[chosen]}
        targets[target] = row
    return {**run, "targets": targets}


def _name(group: Group) -> str:
    dataset, model = group
    return f"{MODEL_NAMES.get(model, model)} on {DATASET_NAMES.get(dataset, dataset)}"


def _targets(runs: Runs) -> list[str]:
    """The target sparsities of ``runs`` (keys such as ``"0.9"``), in increasing order."""
    keys = {key for run in runs for key in run["targets"] if number(key) is not None}
    return sorted(keys, key=float)


def _shown_target(target: str) -> str:
    return f"{100 * float(target):g}%"


def _side(run: dict[str, Any], method: str, target: str) -> dict[str, Any]:
    """One method's numbers in ``run`` at ``target``; dense counts only where the run has the target too,
    so every comparison at a target is over the same seeds."""
    if not isinstance(run["targets"].get(target), dict):
        return {}
    holder = run if method == "dense" else run["targets"][target]
    side = holder.get(method) if isinstance(holder, dict) else None
    return side if isinstance(side, dict) else {}


def _values(runs: Runs, method: str, target: str, key: str) -> list[float]:
    values = [number(_side(run, method, target).get(key)) for run in runs]
    return [v for v in values if v is not None]


def _pairs(runs: Runs, target: str, first: str, second: str) -> list[tuple[float, float]]:
    """Per-seed test accuracies of two methods, for the seeds where both were measured."""
    return known_pairs((_side(r, first, target).get("test_accuracy"), _side(r, second, target).get("test_accuracy"))
                       for r in runs)


def _mean_of(runs: Runs, method: str, target: str, key: str) -> float | None:
    values = _values(runs, method, target, key)
    return statistics.mean(values) if values else None


def _mean_std(values: list[float], scale: float = 100.0, digits: int = 2, signed: bool = False) -> str:
    if not values:
        return MISSING
    sign = "+" if signed else ""
    mean = f"{scale * statistics.mean(values):{sign}.{digits}f}"
    return mean if len(values) == 1 else f"{mean} ± {scale * statistics.stdev(values):.{digits}f}"


def _curve(runs: Runs, method: str, target: str) -> list[float]:
    """Test accuracy (%) per epoch, mean over seeds, as long as the shortest complete curve."""
    raw = [_side(run, method, target).get("accuracy_per_epoch") for run in runs]
    curves = [[float(a) for a in c] for c in raw
              if isinstance(c, list) and c and all(number(a) is not None for a in c)]
    return [100 * statistics.mean(c[e] for c in curves) for e in range(min(map(len, curves)))] if curves else []


def _claims_table(groups: dict[Group, Runs]) -> Table:
    table = Table("Zhao & Zeng (2021) claims and our numbers", ["setting", "quantity", "paper", "ours", "agreement"],
                  note="Ours: mean over seeds; 'dense' is the same network, seed and batch order trained without "
                       "pruning. The share of connections removed is the target we set, so its row checks the "
                       "setting against the paper's range, not the pruning rule.")
    pruned_claim, accuracy_claim, speed_claim = ZHAO2021.claims[:3]
    for group, runs in groups.items():
        table.rows.append([_name(group), pruned_claim.quantity, pruned_claim.shown, *_pruned_share(runs)])
    for claim, measure in ((accuracy_claim, _accuracy_vs_dense), (speed_claim, _learning_speed)):
        for group, runs in groups.items():
            for target in _targets(runs):
                table.rows.append([f"{_name(group)}, {_shown_target(target)} pruned", claim.quantity, claim.shown,
                                   *measure(runs, target)])
    measured = {dataset for dataset, _ in groups}
    for claim in ZHAO2021.claims[3:]:
        dataset = next((k for k, v in DATASET_NAMES.items() if v == claim.setting), claim.setting)
        ours = "; ".join(f"{MODEL_NAMES.get(m, m)}: " + ", ".join(
            f"{_mean_std(_values(runs, 'synaptic', t, 'test_accuracy'))}% at {_shown_target(t)}"
            for t in _targets(runs)) for (d, m), runs in groups.items() if d == dataset)
        table.rows.append([claim.setting, claim.quantity, claim.shown,
                           ours if dataset in measured else "not run (not in the benchmark's --datasets)",
                           "cannot compare: the paper's figure is unknown"])
    return table


def _pruned_share(runs: Runs) -> list[str]:
    low, high = ZHAO2021.claims[0].numbers["low"], ZHAO2021.claims[0].numbers["high"]
    shown, verdicts = [], []
    for target in _targets(runs):
        pruned = _mean_of(runs, "synaptic", target, "pruned_fraction")
        shown.append(f"{percent(pruned, 1)} (target {_shown_target(target)})")
        if pruned is not None:
            shown_share = round(pruned, 3)  # compare what the page prints: 90.003% is "90.0%", within 59-90%
            where = "within" if low <= shown_share <= high else "below" if shown_share < low else "above"
            verdicts.append(f"{percent(pruned, 1)} {where}")
    return [", ".join(shown) or MISSING, ", ".join(verdicts) + " the range" if verdicts else MISSING]


def _accuracy_vs_dense(runs: Runs, target: str) -> list[str]:
    pairs = _pairs(runs, target, "synaptic", "dense")
    if not pairs:
        return [MISSING, MISSING]
    pruned, dense = statistics.mean(p[0] for p in pairs), statistics.mean(p[1] for p in pairs)
    higher = sum(s > d for s, d in pairs)
    ours = f"{100 * pruned:.2f}% vs {100 * dense:.2f}% ({100 * (pruned - dense):+.2f} pt)"
    return [ours, f"{'yes' if pruned > dense else 'no'} (pruned higher in {higher} of {len(pairs)} seeds)"]


def _learning_speed(runs: Runs, target: str) -> list[str]:
    """Epoch by epoch, is the synaptic run's test accuracy ahead of dense's (curves are means over seeds)?"""
    # curves of unequal length (a shorter dense run) are compared over the epochs both have
    gaps = [s - d for s, d in zip(_curve(runs, "synaptic", target), _curve(runs, "dense", target), strict=False)]
    if not gaps:
        return [MISSING, MISSING]
    ahead, behind = sum(g > 0 for g in gaps), sum(g < 0 for g in gaps)
    ours = (f"test accuracy per epoch vs dense: ahead in {ahead}, behind in {behind} of {len(gaps)} epochs; "
            f"mean gap {statistics.mean(gaps):+.2f} pt")
    return [ours, "yes (more epochs ahead than behind)" if ahead > behind else
            "no (more epochs behind than ahead)" if behind > ahead else "no (as many epochs ahead as behind)"]


def _han_table(groups: dict[Group, Runs]) -> Table:
    table = Table(
        "Han et al. (2015) anchors and our peers at the target nearest theirs",
        ["setting", "Han et al.: pruned; error dense → pruned", "ours GMP: pruned; error dense → pruned",
         "ours synaptic: pruned; error"],
        note="Han et al. prune a trained network and retrain it, iteratively; GMP and synaptic prune during training "
             "on the cubic schedule, within the dense run's epochs. Test errors, mean over seeds.",
    )
    for group, claim in HAN_SETTINGS.items():
        targets = _targets(groups.get(group, []))
        if not targets:
            missing = f"not run (no {group[0]} {group[1]} in the benchmark's --datasets and --models)"
            table.rows.append([claim.setting, claim.shown, missing, MISSING])
            continue
        target = min(targets, key=lambda t: abs(float(t) - claim.numbers["pruned"]))
        table.rows.append([claim.setting, claim.shown,
                           *(_pruned_error(groups[group], m, target) for m in ("gmp", "synaptic"))])
    return table


def _pruned_error(runs: Runs, method: str, target: str) -> str:
    errors = [percent(None if a is None else 1 - a) for a in (_mean_of(runs, m, target, "test_accuracy")
                                                               for m in ("dense", method))]
    shown = errors[1] if method == "synaptic" else " → ".join(errors)
    return f"{percent(_mean_of(runs, method, target, 'pruned_fraction'), 1)}; {shown}"


def _peer_table(groups: dict[Group, Runs]) -> Table:
    table = Table(
        "Test accuracy at each target sparsity, mean ± std over seeds",
        ["setting", "target", "seeds", "dense %", "synaptic %", "GMP %", "synaptic − GMP pt",
         "pruned % synaptic / GMP", "params synaptic / GMP"],
        note="Accuracy after the last epoch. synaptic − GMP: mean ± std of the per-seed differences. Params: the "
             "compacted model (dead units removed), mean over seeds.",
        is_compact=True,
    )
    for group, runs in groups.items():
        for target in _targets(runs):
            acc = {m: _values(runs, m, target, "test_accuracy") for m in METHODS}
            pruned = [_mean_std(_values(runs, m, target, "pruned_fraction"), digits=1) for m in ("synaptic", "gmp")]
            params = [count(_mean_of(runs, m, target, "params_compact")) for m in ("synaptic", "gmp")]
            table.rows.append([
                _name(group), _shown_target(target), str(len(acc["synaptic"])), _mean_std(acc["dense"]),
                _mean_std(acc["synaptic"]), _mean_std(acc["gmp"]),
                _mean_std([s - g for s, g in _pairs(runs, target, "synaptic", "gmp")], signed=True),
                " / ".join(pruned), " / ".join(params),
            ])
    return table


def _figures(groups: dict[Group, Runs], out: Path) -> list[FigureRef]:
    figures = []
    for group, runs in groups.items():
        targets = _targets(runs)
        if not targets:
            continue
        lines = [plots.Line(LABELS[m], list(range(1, len(curve) + 1)), curve, i, m == "dense")
                 for i, m in enumerate(METHODS) if (curve := _curve(runs, m, targets[-1]))]
        if lines:
            stem = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{group[0]}-{group[1]}")
            path = plots.line_chart(out / "figures" / f"zhao2021-epochs-{stem}.png", lines,
                                    f"{_name(group)}, {_shown_target(targets[-1])} pruned", "epoch",
                                    "test accuracy (%)")
            figures.append(FigureRef("figures/" + path.name,
                                     f"{_name(group)}: test accuracy per epoch at the highest target, "
                                     f"{_shown_target(targets[-1])}, mean over seeds; dense dashed."))
    lines = []
    for g, (group, runs) in enumerate(groups.items()):
        targets = _targets(runs)
        if len(targets) < 2:  # one sparsity makes no curve
            continue
        for i, method in enumerate(METHODS):
            points = [(100 * float(t), 100 * mean) for t in targets
                      if (mean := _mean_of(runs, method, t, "test_accuracy")) is not None]
            if points:
                lines.append(plots.Line(f"{group[1]}/{group[0]}: {LABELS[method]}", [p[0] for p in points],
                                        [p[1] for p in points], 3 * g + i, method == "dense"))
    if lines:
        path = plots.line_chart(out / "figures" / "zhao2021-sparsity.png", lines,
                                "Test accuracy vs sparsity (mean over seeds)", "connections pruned (%)",
                                "test accuracy (%)")
        figures.append(FigureRef("figures/" + path.name, "Test accuracy at each target sparsity: synaptic, GMP and "
                                                         "dense (dashed, the same at every target)."))
    return figures
