"""The synaptic suite's reports: its Markdown tables and accuracy curves, from the JSON it writes.

Pure functions of the payload (``command``, ``environment`` and ``runs``), so a table can
be rewritten from a saved JSON without training anything.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

MARGIN = 0.005  # "reaches dense": within 0.5 points of the same seed's dense final accuracy


def start_text(run: dict[str, Any]) -> str:
    """How the run's network started: from scratch, or (small budget) trained first."""
    start = run.get("start")
    return "" if start is None else f"trained {_epochs(start['epochs'])} at lr {start['lr']:g} first"


def _epochs(count: int) -> str:
    return f"{count} epoch" + ("" if count == 1 else "s")


def _first_epoch(per_epoch: list[float] | None, level: float) -> int | None:
    """1-based epoch at which ``per_epoch`` first reaches ``level``; None if never (or not measured)."""
    return next((epoch for epoch, value in enumerate(per_epoch or [], 1) if value >= level), None)


def learning_speed(runs: list[dict[str, Any]]) -> None:
    """Record, in every method of every run, the first epoch reaching the same seed's dense final accuracy - 0.5."""
    for run in runs:
        dense = run.get("dense")
        if dense is None:
            continue
        methods = [dense, *(m for row in run["targets"].values() for m in row.values())]
        for method in methods:
            method["epoch_reaching_dense"] = {
                "test": _first_epoch(method["accuracy_per_epoch"], dense["test_accuracy"] - MARGIN),
                "validation": _first_epoch(method.get("validation_per_epoch"),
                                           dense.get("validation_accuracy", float("inf")) - MARGIN),
            }


def _setting(run: dict[str, Any]) -> tuple[str, str, str]:
    args = run["config"].get("model_args")
    model = run["model"] + (" (" + ", ".join(f"{k} {v}" for k, v in args.items()) + ")" if args else "")
    if run.get("start"):
        model += f", {start_text(run)}, then every method {_epochs(run['epochs'])} at lr {run['config']['lr']:g}"
    return run["dataset"], model, run.get("inputs", "standard")


def study_markdown(payload: dict[str, Any]) -> str:
    """One table per setting: dense, then per target every method, on validation and test, with the learning speed."""
    lines = _header(payload, "Pruning criteria vs gradual magnitude pruning (GMP), chosen on validation")
    lines[1] = "Commands:\n\n" + "\n".join(f"    {c}" for c in payload["commands"]) + "\n"
    lines.append("Accuracy (%) after the last epoch, mean ± std over the seeds listed; same model, recipe, epochs, "
                 "seeds and batch order for every row. *synaptic:X*: `SynapticPruner(criterion=X)` with the cubic "
                 "schedule; *gmp*: global |w| ranking; *gmp-layer*: every layer pruned to the target. **Bold**: the "
                 "best mean validation accuracy at that sparsity (the choice; test is never used to choose). "
                 "*vs GMP*: test accuracy minus that of the GMP variant (global or per layer) with the better mean "
                 "validation accuracy, same seed. *Epoch reaching dense*: per seed, the first epoch at which "
                 "validation / test accuracy reaches that seed's dense final accuracy minus 0.5 points (— never; "
                 "n/a: no dense run of that seed).\n")
    settings: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in payload["runs"]:
        settings.setdefault(_setting(run), []).append(run)
    for (dataset, model, inputs), runs in settings.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        title = (f"## {dataset}, {model}, {inputs} inputs, {_epochs(runs[0]['epochs'])}, "
                 f"{runs[0]['config'].get('limit_train') or 'all'} training images\n")
        lines += [title, ("| pruned | method | seeds | validation | test | vs GMP | epoch reaching dense (validation) "
                          "| (test) |"), "|---|---|---|---|---|---|---|---|"]
        started = [r for r in runs if "start" in r]
        if started:  # the trained network every method starts from, before its last epochs
            lines.append(_study_row("0%", "start", {r["seed"]: r["start"] for r in started}, None))
        dense = [r for r in runs if "dense" in r]
        if dense:
            lines.append(_study_row("0%", "dense", {r["seed"]: r["dense"] for r in dense}, None))
        targets = sorted({t for r in runs for t in r["targets"]}, key=float)
        for target in targets:
            per_method: dict[str, dict[int, dict[str, Any]]] = {}
            for run in runs:
                for method, result in run["targets"].get(target, {}).items():
                    per_method.setdefault(method, {})[run["seed"]] = result
            best = _best_by_validation(per_method)
            gmp = _best_by_validation({m: v for m, v in per_method.items() if m.startswith("gmp")})
            for method, by_seed in per_method.items():
                lines.append(_study_row(f"{100 * float(target):g}%", method, by_seed,
                                        per_method.get(gmp) if gmp else None, is_best=method == best))
        lines.append("")
    return "\n".join(lines) + "\n"


def _best_by_validation(candidates: dict[str, dict[int, dict[str, Any]]]) -> str | None:
    """The method with the best mean validation accuracy (None without validation numbers)."""
    scored = {m: statistics.mean(r["validation_accuracy"] for r in v.values())
              for m, v in candidates.items() if v and all("validation_accuracy" in r for r in v.values())}
    return max(scored, key=scored.__getitem__) if scored else None


def _study_row(pruned: str, method: str, by_seed: dict[int, dict[str, Any]],
               gmp: dict[int, dict[str, Any]] | None, is_best: bool = False) -> str:
    seeds = sorted(by_seed)
    test = [100 * by_seed[s]["test_accuracy"] for s in seeds]
    val = [100 * by_seed[s]["validation_accuracy"] for s in seeds if "validation_accuracy" in by_seed[s]]
    diff = [100 * (by_seed[s]["test_accuracy"] - gmp[s]["test_accuracy"]) for s in seeds if gmp and s in gmp]
    # "—": never reached; "n/a": no dense run of that seed to compare with
    reach = {part: ", ".join(str(by_seed[s]["epoch_reaching_dense"][part] or "—")
                             if "epoch_reaching_dense" in by_seed[s] else "n/a" for s in seeds)
             for part in ("validation", "test")}
    name = f"**{method}**" if is_best else method
    versus = mean_std(diff, signed=True) if diff and not method.startswith("gmp") else "—"
    return (f"| {pruned} | {name} | {', '.join(map(str, seeds))} | {mean_std(val) if val else '—'} | "
            f"{mean_std(test)} | {versus} | {reach['validation']} | {reach['test']} |")


def plot_curves(payload: dict[str, Any], out: Path, name: str) -> None:
    """Test accuracy per epoch of seed 0 (the lowest seed present): dense dashed, every method at each target."""
    from neuroprune.report.plots import (  # matplotlib only when plotting
        Line,
        line_chart,
    )

    for run in payload["runs"]:
        if run["seed"] != min(r["seed"] for r in payload["runs"] if _setting(r) == _setting(run)):
            continue
        dataset, model, inputs = _setting(run)
        for target, row in run["targets"].items():
            lines = []
            if "dense" in run:
                per_epoch = run["dense"]["accuracy_per_epoch"]
                lines.append(Line("dense", list(range(1, len(per_epoch) + 1)), [100 * a for a in per_epoch], 0, True))
            for index, (method, result) in enumerate(row.items(), 1):
                per_epoch = result["accuracy_per_epoch"]
                lines.append(Line(method, list(range(1, len(per_epoch) + 1)), [100 * a for a in per_epoch], index))
            stem = f"{name}_{run['model']}_{inputs}_{float(target):g}".replace(".", "p")
            line_chart(out / f"{stem}.png", lines, f"{dataset}, {model}, {inputs} inputs, {100 * float(target):g}% "
                       f"pruned (seed {run['seed']})", "epoch", "test accuracy (%)")


def _groups(runs: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["dataset"], run["model"]), []).append(run)
    return groups


def _header(payload: dict[str, Any], title: str) -> list[str]:
    env = payload["environment"]
    return [f"# {title}\n", f"Command: `{payload['command']}`\n",
            f"Machine: {env['processor']}, torch {env['versions']['torch']}, {env['torch_threads']} thread(s).\n"]


def sparsity_markdown(payload: dict[str, Any]) -> str:
    granularity = payload["runs"][0]["config"].get("granularity", "connection")
    lines = _header(payload, f"Synaptic pruning (granularity {granularity!r}) vs gradual magnitude pruning")
    lines += ["Test accuracy (%) after the last epoch, mean ± std over seeds; same model, recipe, epochs, seeds and "
              "batch order for every column. Params: the compacted model (dead units removed).\n",
              "| data set | model | seeds | pruned | dense | synaptic | GMP | synaptic - GMP | params synaptic / GMP |",
              "|---|---|---|---|---|---|---|---|---|"]
    for (dataset, model), runs in _groups(payload["runs"]).items():
        dense = [100 * r["dense"]["test_accuracy"] for r in runs]
        for target in runs[0]["targets"]:
            syn = [100 * r["targets"][target]["synaptic"]["test_accuracy"] for r in runs]
            gmp = [100 * r["targets"][target]["gmp"]["test_accuracy"] for r in runs]
            diff = [s - g for s, g in zip(syn, gmp, strict=True)]
            params = [statistics.mean(r["targets"][target][m]["params_compact"] for r in runs)
                      for m in ("synaptic", "gmp")]
            lines.append(f"| {dataset} | {model} | {len(runs)} | {100 * float(target):.0f}% | {mean_std(dense)} | "
                         f"{mean_std(syn)} | {mean_std(gmp)} | {mean_std(diff, signed=True)} | "
                         f"{params[0]:,.0f} / {params[1]:,.0f} |")
    return "\n".join(lines) + "\n"


def unit_markdown(payload: dict[str, Any]) -> str:
    granularity = payload["runs"][0].get("granularity", "unit")
    lines = _header(payload, f"Synaptic pruning at granularity {granularity!r}: accuracy and speed")
    lines += ["Test accuracy (%), mean ± std over seeds. *scratch*: the compacted model's final shape trained from "
              "scratch with the same recipe. Speed-up over dense: median over interleaved rounds in one process; "
              "*lean* is the compacted model in the export's inference chain.\n",
              f"| data set | model | seeds | pruned | widths (seed 0) | dense | synaptic ({granularity}) "
              "| scratch, same shape | speed-up compact | speed-up lean |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for (dataset, model), runs in _groups(payload["runs"]).items():
        acc = {m: [100 * r[m]["test_accuracy"] for r in runs if m in r] for m in ("dense", "synaptic", "scratch")}
        pruned = [100 * r["synaptic"]["pruned_fraction"] for r in runs]
        batches = [k for k in runs[0]["latency"] if k.startswith("batch_")]
        speed = {v: " / ".join(f"{statistics.mean(r['latency'][b]['speedup'][v] for r in runs):.2f}x "
                               f"(b{b.removeprefix('batch_')})" for b in batches)
                 for v in ("compact", "lean")}
        lines.append(f"| {dataset} | {model} | {len(runs)} | {mean_std(pruned, 1)}% | "
                     f"{runs[0]['synaptic']['widths']} | {mean_std(acc['dense'])} | {mean_std(acc['synaptic'])} | "
                     f"{mean_std(acc['scratch']) if acc['scratch'] else '—'} | {speed['compact']} | "
                     f"{speed['lean']} |")
    return "\n".join(lines) + "\n"


def mean_std(values: list[float], digits: int = 2, signed: bool = False) -> str:
    """``mean ± std`` of ``values`` (the value alone for one), with ``digits`` decimals."""
    sign = "+" if signed else ""
    if len(values) == 1:
        return f"{values[0]:{sign}.{digits}f}"
    return f"{statistics.mean(values):{sign}.{digits}f} ± {statistics.stdev(values):.{digits}f}"
