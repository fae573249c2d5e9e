"""Choosing the cut: short recovery of each candidate, scored as in Camacho et al. (2025).

score = tau * accuracy + (1 - tau) * (1 - cost / cost_base), tau = 0.8 by default, where the
cost is the parameter count (the authors' choice), the MACs, or the measured latency.
Budgets (max params, MACs, latency) are checked before any training, on the untrained
pruned model, so only candidates that fit are recovered and scored.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..engine import evaluate
from ..errors import ConfigError, NeuropruneError
from ..metrics import LatencyComparison, compare_latency, count_macs, count_params
from .blocks import BlockSpan
from .init import init_translators
from .pruner import DepthPruner
from .recovery import train_translators, translator_modules

log = logging.getLogger(__name__)
EFFICIENCY = ("params", "macs", "latency")


@dataclass(frozen=True)
class Budgets:
    """Limits a pruned model must meet; ``None`` means no limit.

    Attributes:
        max_params: parameters.
        max_macs: MACs per sample.
        max_latency_ms: median CPU latency at ``latency_batch``, in milliseconds.
        latency_batch: batch size of the latency measurements.
        min_speedup: at least this many times faster than the intact model at
            ``latency_batch``, timed beside it in interleaved rounds. Unlike an absolute latency,
            a ratio measured that way holds when the machine is busy.
    """

    max_params: int | None = None
    max_macs: int | None = None
    max_latency_ms: float | None = None
    latency_batch: int = 1
    min_speedup: float | None = None

    def __post_init__(self) -> None:
        if self.min_speedup is not None and not self.min_speedup > 0:
            raise ConfigError(f"min_speedup must be > 0, got {self.min_speedup}")

    @property
    def is_set(self) -> bool:
        """True when at least one limit is set."""
        return any(v is not None for v in (self.max_params, self.max_macs, self.max_latency_ms, self.min_speedup))

    @property
    def is_timed(self) -> bool:
        """True when checking the limits needs a latency measurement."""
        return self.max_latency_ms is not None or self.min_speedup is not None

    def excess(self, row: dict[str, Any]) -> float:
        """Largest ratio value / limit over the set budgets (<= 1 means the row fits)."""
        ratios = [1.0]
        for limit, key in ((self.max_params, "params"), (self.max_macs, "macs"), (self.max_latency_ms, "latency_ms")):
            if limit is not None:
                ratios.append(row[key] / limit)
        if self.min_speedup is not None:
            ratios.append(self.min_speedup / row["speedup"])
        return max(ratios)


@dataclass
class SearchResult:
    """Every candidate's row (measurements, budget check, accuracy, score) and the winner.

    Attributes:
        rows: one dict per candidate, best score first; unevaluated ones have ``accuracy`` None.
        best: the winning cut.
        base: the intact model's ``params``, ``macs``, ``latency_ms`` and ``accuracy``.
    """

    rows: list[dict[str, Any]]
    best: BlockSpan
    base: dict[str, Any] = field(default_factory=dict)


def score(accuracy: float, cost: float, cost_base: float, tau: float = 0.8) -> float:
    """``tau * accuracy + (1 - tau) * (1 - cost / cost_base)``.

    Example:
        >>> round(score(0.9, 50, 100, tau=0.8), 3)
        0.82
    """
    return tau * accuracy + (1 - tau) * (1 - cost / cost_base)


def check_score_options(tau: float, efficiency: str) -> None:
    """Raise ConfigError unless ``tau`` is in [0, 1] and ``efficiency`` is one of :data:`EFFICIENCY`."""
    if not 0 <= tau <= 1:
        raise ConfigError(f"tau must be in [0, 1], got {tau}")
    if efficiency not in EFFICIENCY:
        raise ConfigError(f"efficiency must be one of {', '.join(EFFICIENCY)}, got {efficiency!r}")


def search_cuts(
    pruner: DepthPruner,
    train_loader: Iterable,
    eval_loader: Iterable,
    *,
    tau: float = 0.8,
    budgets: Budgets = Budgets(),
    efficiency: str = "params",
    translator_epochs: int = 1,
    translator_lr: float = 1e-3,
    max_evaluated: int | None = None,
    kernel_size: int = 1,
    use_batchnorm: bool = False,
    latency_repeats: int = 30,
    latency_rounds: int = 3,
    spans: Sequence[BlockSpan] | None = None,
    translator_init: str = "lstsq",
    precision: str = "32",
    bridge: str = "translator",
) -> SearchResult:
    """Score candidate cuts with a short translator-only recovery each.

    Args:
        pruner: a DepthPruner over the trained model.
        train_loader: data for the short recovery.
        eval_loader: data the accuracy is measured on.
        tau: weight of accuracy in the score.
        budgets: limits checked before training.
        efficiency: cost in the score: ``params`` (authors), ``macs`` or ``latency``.
        translator_epochs: epochs of translator-only training per candidate.
        translator_lr: its learning rate.
        max_evaluated: recover at most this many candidates that fit the budgets; they are
            spread evenly over the range of cost (``None``: all).
        kernel_size: the translator's convolution kernel (1 or 3).
        use_batchnorm: batch norm after the translator's convolution.
        latency_repeats: timed calls per model and round of a latency comparison.
        latency_rounds: interleaved rounds in which each candidate is timed beside the intact
            model (:func:`~neuroprune.metrics.compare_latency`); its latency is the intact
            model's median over the whole search divided by the candidate's median speed-up,
            so machine load during one comparison touches both sides. Recovered candidates
            are timed again with ``2 * latency_rounds + 1`` rounds, and one that no longer
            meets the budgets gets no score.
        spans: the candidates to consider (default: all of ``pruner.candidates()``).
        translator_init: ``lstsq`` (fit to the intact model's activations, see
            :func:`~.init.init_translator`) or ``random`` (the authors' start).
        precision: ``"32"``, ``"bf16-mixed"`` or ``"16-mixed"`` for the short recoveries and
            the evaluations.
        bridge: ``translator``, ``identity`` or ``auto`` (identity where the shapes match); only
            candidates this bridge can join are considered (a translator joins feature maps,
            identity equal shapes), so a transformer's token cuts need ``identity`` or ``auto``.

    Raises:
        ConfigError: an option is out of range, or no candidate can take the bridge.
        NeuropruneError: no candidate meets the budgets (the closest are listed).
    """
    check_score_options(tau, efficiency)
    candidates = _bridgeable(pruner.candidates() if spans is None else spans, bridge)
    if translator_init not in ("lstsq", "random"):
        raise ConfigError(f"translator_init must be 'lstsq' or 'random', got {translator_init!r}")
    search = _Search(pruner, train_loader, eval_loader, budgets=budgets, tau=tau, efficiency=efficiency,
                     precision=precision, latency=(latency_rounds, latency_repeats),
                     options={"bridge": bridge, "kernel_size": kernel_size, "use_batchnorm": use_batchnorm})
    rows = search.screen(candidates)
    fitting = search.fitting(rows)
    chosen = _spread(sorted(fitting, key=lambda r: r[search.cost_key]), max_evaluated)
    log.info("search: %d candidates, %d fit the budgets, recovering %d", len(rows), len(fitting), len(chosen))
    for index, row in enumerate(chosen, start=1):
        search.recover(row, translator_init=translator_init, epochs=translator_epochs, lr=translator_lr)
        log.info("search %d/%d %s: accuracy %.4f score %.4f", index, len(chosen), row["cut"], row["accuracy"],
                 row["score"])
    _rank(rows, budgets)
    return SearchResult(rows, pruner.span(rows[0]["cut"]), search.base)


class _Search:
    """One search's fixed parts: the intact model's row, the bridge options, and how a row is timed and recovered."""

    def __init__(self, pruner: DepthPruner, train_loader: Iterable, eval_loader: Iterable, *, budgets: Budgets,
                 tau: float, efficiency: str, precision: str, latency: tuple[int, int],
                 options: dict[str, Any]) -> None:
        self.pruner, self.train_loader, self.eval_loader = pruner, train_loader, eval_loader
        self.budgets, self.tau, self.precision, self.options = budgets, tau, precision, options
        self.latency_rounds, self.latency_repeats = latency
        self.cost_key = {"params": "params", "macs": "macs", "latency": "latency_ms"}[efficiency]
        x = pruner.example_inputs[:1]
        self.timed = x.repeat(budgets.latency_batch, *([1] * (x.dim() - 1)))
        self.is_timed = budgets.is_timed or efficiency == "latency"
        self.base: dict[str, Any] = {"params": count_params(pruner.model), "macs": count_macs(pruner.model, x),
                                     "latency_ms": None}
        self.base["accuracy"] = evaluate(pruner.model, eval_loader, precision=precision)["accuracy"]

    def screen(self, candidates: Sequence[BlockSpan]) -> list[dict[str, Any]]:
        """A row per candidate: parameters, MACs, latency when timed, and whether it meets the budgets."""
        speedups: dict[str, float] = {}
        base_ms: list[float] = []
        rows = []
        for span in candidates:
            # Params and MACs follow from the span's own counts; only latency needs the pruned model.
            bridge_params, bridge_macs = _bridge_cost(span, self.options["kernel_size"], self.options["use_batchnorm"],
                                                      self.options["bridge"])
            row = {**span.to_dict(), "params": self.base["params"] - span.params_removed + bridge_params,
                   "macs": self.base["macs"] - span.macs_removed + bridge_macs, "latency_ms": None, "accuracy": None,
                   "score": None}
            if self.is_timed:
                compared = self._compare(self.pruner.plan(span.cut, **self.options).apply(), self.latency_rounds)
                speedups[span.cut] = compared.speedup["candidate"]
                base_ms.append(compared.median_ms["base"])
            rows.append(row)
        if self.is_timed:
            self.base["latency_ms"] = statistics.median(base_ms)
            for row in rows:
                row["speedup"] = speedups[row["cut"]]
                row["latency_ms"] = self.base["latency_ms"] / row["speedup"]
        for row in rows:
            row["meets_budget"] = self.budgets.excess(row) <= 1.0
        return rows

    def fitting(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows that meet the budgets; NeuropruneError naming the closest when none does."""
        fitting = [r for r in rows if r["meets_budget"]]
        if not fitting:
            closest = sorted(rows, key=self.budgets.excess)[:5]
            shown = "; ".join(f"{r['cut']} (params {r['params']:,}, MACs {r['macs']:,}"
                              + (f", latency {r['latency_ms']:.2f} ms" if r["latency_ms"] is not None else "") + ")"
                              for r in closest)
            raise NeuropruneError(f"no candidate meets the budgets {_describe(self.budgets)}; closest: {shown}")
        return fitting

    def recover(self, row: dict[str, Any], *, translator_init: str, epochs: int, lr: float) -> None:
        """Cut ``row``'s span, train its bridge briefly, and write its accuracy and score into ``row``."""
        plan = self.pruner.plan(row["cut"], **self.options)
        small = plan.apply()
        row["bridge"] = plan.bridge
        if translator_init == "lstsq" and self.options["kernel_size"] == 1 and not self.options["use_batchnorm"]:
            init_translators(small, plan, self.train_loader)  # else random, see init_translator
        if epochs > 0 and translator_modules(small):
            train_translators(small, self.train_loader, epochs=epochs, lr=lr, precision=self.precision)
        row["accuracy"] = evaluate(small, self.eval_loader, precision=self.precision)["accuracy"]
        if self.is_timed:
            # the screening timed every candidate briefly; a candidate that may win is timed
            # again, longer, so one burst of machine load cannot decide the search
            retimed = self._compare(small.eval(), 2 * self.latency_rounds + 1)
            row["speedup"] = retimed.speedup["candidate"]
            row["latency_ms"] = self.base["latency_ms"] / row["speedup"]
            row["meets_budget"] = self.budgets.excess(row) <= 1.0
        cost, base_cost = row[self.cost_key], self.base[self.cost_key]
        row["score"] = score(row["accuracy"], cost, base_cost, self.tau) if row["meets_budget"] else None

    def _compare(self, candidate: torch.nn.Module, rounds: int) -> LatencyComparison:
        return compare_latency({"base": self.pruner.model, "candidate": candidate}, self.timed, rounds=rounds,
                               repeats=self.latency_repeats)


def _rank(rows: list[dict[str, Any]], budgets: Budgets) -> None:
    """Sort ``rows`` best score first; NeuropruneError when no recovered row kept a score."""
    rows.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0.0)))
    if rows[0]["score"] is None:
        raise NeuropruneError(f"no recovered candidate meets the budgets {_describe(budgets)} when timed again; "
                              "loosen the latency budget or run on a quieter machine")


def _bridgeable(spans: Sequence[BlockSpan], bridge: str) -> list[BlockSpan]:
    """The spans ``bridge`` can join; ConfigError when none."""
    if bridge not in ("translator", "identity", "auto"):
        raise ConfigError(f"bridge must be 'translator', 'identity' or 'auto', got {bridge!r}")
    kept = [s for s in spans if (s.is_translatable if bridge == "translator" else
                                 s.is_identity_possible if bridge == "identity" else
                                 s.is_translatable or s.is_identity_possible)]
    if not kept and spans:
        hint = "'identity' or 'auto'" if bridge == "translator" else "'translator' or 'auto'"
        raise ConfigError(f"none of the {len(spans)} candidate cuts can be bridged by {bridge!r} (e.g. {spans[0].cut}: "
                          f"{tuple(spans[0].in_shape)} -> {tuple(spans[0].out_shape)}); use the bridge {hint}")
    return kept


def _bridge_cost(span: BlockSpan, kernel_size: int, use_batchnorm: bool, bridge: str = "translator") -> tuple[int, int]:
    """Parameters and MACs per sample of the bridge of ``span`` (nothing for nn.Identity)."""
    if bridge == "identity" or (bridge == "auto" and span.is_identity_possible):
        return 0, 0
    c_a, (c_b, h_b, w_b) = span.in_shape[0], span.out_shape
    weights = c_a * c_b * kernel_size * kernel_size
    return weights + (2 * c_b if use_batchnorm else c_b), weights * h_b * w_b


def _spread(rows: list[dict[str, Any]], count: int | None) -> list[dict[str, Any]]:
    """``count`` rows evenly spaced over ``rows`` (all of them when count is None or larger)."""
    if count is None or count >= len(rows):
        return rows
    if count < 1:
        raise ConfigError(f"max_evaluated must be >= 1, got {count}")
    if count == 1:
        return [rows[len(rows) // 2]]
    return [rows[round(i * (len(rows) - 1) / (count - 1))] for i in range(count)]


def _describe(budgets: Budgets) -> str:
    parts = [f"max_params={budgets.max_params:,}" if budgets.max_params is not None else "",
             f"max_macs={budgets.max_macs:,}" if budgets.max_macs is not None else "",
             f"max_latency_ms={budgets.max_latency_ms} (batch {budgets.latency_batch})"
             if budgets.max_latency_ms is not None else "",
             f"min_speedup={budgets.min_speedup}x (batch {budgets.latency_batch})"
             if budgets.min_speedup is not None else ""]
    return "(" + ", ".join(p for p in parts if p) + ")"
