"""Several cuts at once, chosen greedily: remove one segment at a time, the least harmful first.

A single cut removes one contiguous span. In a residual network most of the compute sits in
blocks that each do little on their own, spread over every stage; a single span fast enough
to matter must then cross stages, and a 1x1 translator cannot stand in for whole stages.
Several small injuries are gentler: drop some blocks of every stage, each bridged by
``nn.Identity`` (a residual block without its branch), or by a translator where the shapes
change.

The chain is split into *segments*, the units between two neighbouring cut boundaries (one
block, or one conv with its batch norm and activation). Each step tries removing every
remaining segment on top of those already removed: neighbouring removed segments join into
one cut, bridged by ``nn.Identity`` when its shapes match, else by a translator started by
least squares (:func:`~.init.init_translator`). No candidate is trained: each is scored on
the validation data as it stands,

    score = tau * accuracy + (1 - tau) * (1 - cost / cost_base),

with the cost in parameters or MACs (``efficiency="latency"`` ranks by MACs, and measures
latency for the budget). The best candidate is kept, and the steps go on until the budgets are
met, or, without budgets, until no removal raises the score. Recovery (fine-tuning) comes after.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..engine import evaluate
from ..errors import ConfigError, NeuropruneError
from ..metrics import compare_latency, count_macs, count_params
from .blocks import boundaries
from .init import init_translator, translator_after
from .pruner import DepthPlan, DepthPruner
from .search import Budgets, check_score_options, score

log = logging.getLogger(__name__)


@dataclass
class GreedyResult:
    """The steps of a greedy search and the cuts it ended with.

    Attributes:
        steps: one row per step: ``cut`` (all cuts so far), ``added`` (the segment removed in
            this step), ``accuracy`` (validation, untrained), ``params``, ``macs``, ``speedup``
            and ``latency_ms`` (when timed), ``score``, ``meets_budget``, ``candidates``.
        cut: the final cuts, ``origin:destination[,...]``.
        base: the intact model's ``params``, ``macs``, ``latency_ms`` and ``accuracy``.
    """

    steps: list[dict[str, Any]]
    cut: str
    base: dict[str, Any] = field(default_factory=dict)


def segments(pruner: DepthPruner) -> list[tuple[int, int]]:
    """``(start, end)`` unit indices of each removable segment: the units between two neighbouring boundaries."""
    points = boundaries(pruner.units)
    return [(a, b) for a, b in zip(points, points[1:], strict=False) if any(u.params for u in pruner.units[a:b])]


def greedy_cuts(
    pruner: DepthPruner,
    fit_loader: Iterable,
    eval_loader: Iterable,
    *,
    tau: float = 0.8,
    budgets: Budgets = Budgets(),
    efficiency: str = "macs",
    latency_repeats: int = 30,
    latency_rounds: int = 3,
    precision: str = "32",
) -> GreedyResult:
    """Remove segments one at a time, each time the one whose removal scores best.

    Args:
        pruner: a DepthPruner over the trained model.
        fit_loader: training batches for the translators' least-squares start.
        eval_loader: the held-out data every candidate is scored on.
        tau: weight of accuracy in the score.
        budgets: stop once the pruned model meets them (latency measured against the intact
            model, interleaved, after each step; a step that seems to meet a latency budget is
            timed again with ``2 * latency_rounds + 1`` rounds before the search stops).
        efficiency: ``params``, ``macs`` or ``latency`` (ranked by MACs, see the module doc).
        latency_repeats, latency_rounds: the latency comparison after each step.
        precision: forward precision of the evaluations.

    Raises:
        ConfigError: an option is out of range.
        NeuropruneError: removing every segment still does not meet the budgets.
    """
    check_score_options(tau, efficiency)
    has_budget = budgets.is_set
    search = _Greedy(pruner, fit_loader, eval_loader, tau=tau, precision=precision,
                     cost_key="params" if efficiency == "params" else "macs")
    base = search.base
    x = pruner.example_inputs[:1]
    timed = x.repeat(budgets.latency_batch, *([1] * (x.dim() - 1)))
    base_ms: list[float] = []
    removed: set[int] = set()
    current = dict(base)
    steps: list[dict[str, Any]] = []
    while not (has_budget and steps and steps[-1]["meets_budget"]):
        best = search.best_removal(removed)
        if best is None:
            break
        index, row, small = best
        if not has_budget and row["score"] <= current["score"]:
            break  # no removal pays for what it costs in accuracy
        removed.add(index)
        if budgets.is_timed:
            base_ms.append(_time_step(row, pruner.model, small, timed, budgets, latency_rounds, latency_repeats))
        row["meets_budget"] = budgets.excess(row) <= 1.0 if has_budget else True
        steps.append(row)
        current = row
        log.info("greedy step %d: removed %s -> %s, validation accuracy %.4f, %s %s%s", len(steps), row["added"],
                 row["cut"], row["accuracy"], search.cost_key, f"{row[search.cost_key]:,}",
                 f", {row['speedup']:.2f}x faster" if budgets.is_timed else "")
    if base_ms:
        base["latency_ms"] = statistics.median(base_ms)
    _check_steps(steps, has_budget, tau)
    return GreedyResult(steps, steps[-1]["cut"], base)


class _Greedy:
    """One greedy search's fixed parts: the segments, the intact model's row, and how a trial is built and scored."""

    def __init__(self, pruner: DepthPruner, fit_loader: Iterable, eval_loader: Iterable, *, tau: float,
                 precision: str, cost_key: str) -> None:
        self.pruner, self.fit_loader, self.eval_loader = pruner, fit_loader, eval_loader
        self.tau, self.precision, self.cost_key = tau, precision, cost_key
        self.x = pruner.example_inputs[:1]
        self.base: dict[str, Any] = {"params": count_params(pruner.model), "macs": count_macs(pruner.model, self.x),
                                     "latency_ms": None,
                                     "accuracy": evaluate(pruner.model, eval_loader, precision=precision)["accuracy"]}
        self.base["score"] = score(self.base["accuracy"], self.base[cost_key], self.base[cost_key], tau)
        self.pieces = segments(pruner)
        self.translators: dict[str, dict[str, torch.Tensor]] = {}  # least-squares starts, by cut

    def best_removal(self, removed: set[int]) -> tuple[int, dict[str, Any], nn.Module] | None:
        """The segment whose removal (beside ``removed``) scores best, its row and model; None if none can go."""
        best: tuple[int, dict[str, Any], nn.Module] | None = None  # only the best model is kept
        tried = 0
        for candidate in sorted(set(range(len(self.pieces))) - removed):
            try:
                plan, model = self.build(removed | {candidate})
            except ConfigError:  # the joined cut cannot be bridged (it would need upsampling)
                continue
            tried += 1
            trial: dict[str, Any] = {"cut": plan.cut, "added": _segment_name(self.pruner, self.pieces[candidate]),
                                     "params": count_params(model), "macs": count_macs(model, self.x)}
            trial["accuracy"] = evaluate(model, self.eval_loader, precision=self.precision)["accuracy"]
            trial["score"] = score(trial["accuracy"], trial[self.cost_key], self.base[self.cost_key], self.tau)
            if best is None or trial["score"] > best[1]["score"]:
                best = (candidate, trial, model)
        if best is not None:
            best[1]["candidates"] = tried
        return best

    def build(self, removed: set[int]) -> tuple[DepthPlan, nn.Module]:
        """The plan and model without the ``removed`` segments; each translator starts from its cached fit."""
        plan = self.pruner.plan(_cuts(self.pruner, self.pieces, removed), bridge="auto")
        small = plan.apply()
        for span, kind in zip(plan.spans, plan.bridges, strict=True):
            if kind != "translator":
                continue
            translator = translator_after(small, span.origin)
            assert translator is not None
            if span.cut not in self.translators:
                init_translator(small, self.pruner.model, span, self.fit_loader)
                self.translators[span.cut] = {k: v.clone() for k, v in translator.state_dict().items()}
            translator.load_state_dict(self.translators[span.cut])
        return plan, small


def _time_step(row: dict[str, Any], base: nn.Module, small: nn.Module, timed: torch.Tensor, budgets: Budgets,
               latency_rounds: int, latency_repeats: int) -> float:
    """Time ``small`` beside ``base`` into ``row`` (speedup, latency_ms); returns ``base``'s median in ms."""
    # the intact model is timed beside each step, so load during one step touches both sides
    for rounds in (latency_rounds, 2 * latency_rounds + 1):
        compared = compare_latency({"base": base, "pruned": small.eval()}, timed, rounds=rounds,
                                   repeats=latency_repeats)
        row["speedup"] = compared.speedup["pruned"]
        row["latency_ms"] = compared.median_ms["base"] / row["speedup"]
        if budgets.excess(row) > 1.0:
            break  # a step that seems to meet the budgets is timed again, longer, before the search stops
    return compared.median_ms["base"]


def _check_steps(steps: list[dict[str, Any]], has_budget: bool, tau: float) -> None:
    """Raise NeuropruneError when no step was taken, or the last one still misses the budgets."""
    if not steps:
        reason = "no segment can be cut out and bridged" if has_budget else \
            f"every removal lowers the score (tau={tau}); lower tau or set a budget"
        raise NeuropruneError(f"no segment could be removed: {reason}")
    if has_budget and not steps[-1]["meets_budget"]:
        raise NeuropruneError(f"removing every segment does not meet the budgets; the last step reached "
                              f"params {steps[-1]['params']:,}, MACs {steps[-1]['macs']:,}")


def _cuts(pruner: DepthPruner, pieces: list[tuple[int, int]], removed: set[int]) -> list[str]:
    """Removed segments, neighbours joined, as ``origin:destination`` cuts."""
    cuts: list[str] = []
    run: list[int] = []
    for index in sorted(removed) + [-1]:
        if run and (index == -1 or pieces[index][0] != pieces[run[-1]][1]):
            start, end = pieces[run[0]][0], pieces[run[-1]][1]
            cuts.append(f"{pruner.units[start - 1].name}:{pruner.units[end].name}")
            run = []
        if index != -1:
            run.append(index)
    return cuts


def _segment_name(pruner: DepthPruner, piece: tuple[int, int]) -> str:
    start, end = piece
    names = [u.name for u in pruner.units[start:end]]
    return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"
