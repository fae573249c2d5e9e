"""``build_report``: run folders in, one HTML page + Markdown + PNG figures out.

What a page shows depends on what the runs recorded: synaptic runs get accuracy curves
(dense vs pruned), live connections per layer over training steps and the pruned share
per layer; depth runs get the candidate table and accuracy against MACs and against
measured latency; every run appears in a comparison table. Sections whose data no run
holds are left out rather than drawn empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import plots
from .html import FigureRef, Page, Section, write_page
from .record import RunRecord, known_pairs, load_runs, metric, number
from .tables import (
    candidate_table,
    depth_table,
    is_greedy,
    other_table,
    per_layer_table,
    synaptic_table,
)

FIGURES = "figures"


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`build_report` wrote.

    Attributes:
        html: the page (``index.html``).
        markdown: the same content as Markdown (``report.md``).
        figures: the PNG files, inside ``figures/`` next to the page.
    """

    html: Path
    markdown: Path
    figures: list[Path]


def build_report(run_dirs: list[str | Path], out_dir: str | Path, title: str | None = None) -> ReportFiles:
    """Write a report on one or more run folders into ``out_dir``.

    Args:
        run_dirs: folders written by ``neuroprune synaptic`` or ``neuroprune depth``.
        out_dir: folder for ``index.html``, ``report.md`` and ``figures/`` (created).
        title: page title; a default names the number of runs.

    Returns:
        The paths written.

    Raises:
        NeuropruneError: a folder is missing or holds no result.json (the message names it),
            or matplotlib is not installed.

    Example:
        >>> files = build_report(["runs/mlp_mnist"], "report")  # doctest: +SKIP
        >>> files.html.name
        'index.html'
    """
    records = load_runs(list(run_dirs))
    out = Path(out_dir)
    (out / FIGURES).mkdir(parents=True, exist_ok=True)
    synaptic = [r for r in records if r.method == "synaptic"]
    depth = [r for r in records if r.method == "depth"]
    others = [r for r in records if r.method not in ("synaptic", "depth")]

    page = Page(title or f"neuroprune report: {len(records)} run{'s' if len(records) > 1 else ''}",
                intro=[f"Runs: {', '.join(f'{r.label} ({r.method}, `{r.path}`)' for r in records)}."])
    comparison = Section("Comparison across runs")
    if synaptic:
        comparison.tables.append(synaptic_table(synaptic))
    if depth:
        comparison.tables.append(depth_table(depth))
    if others:
        comparison.tables.append(other_table(others))
    page.sections.append(comparison)
    if synaptic:
        page.sections += _synaptic_sections(synaptic, out)
    if depth:
        page.sections += _depth_sections(depth, out)

    html_path, markdown_path = write_page(page, out)
    figures = [out / f.path for s in page.sections for f in s.figures]
    return ReportFiles(html_path, markdown_path, figures)


def _synaptic_sections(records: list[RunRecord], out: Path) -> list[Section]:
    curves = Section("Accuracy per epoch", [("Test accuracy after each epoch; dashed: the same network and seed "
                                            "trained without pruning (runs made with --compare-dense); 'GMP', in "
                                            "a colour of its own: gradual magnitude pruning (--compare-gmp).")])
    lines = []
    for i, r in enumerate(records):
        prefix = f"{r.label}: " if len(records) > 1 else ""
        for key, dashed in (("history", False), ("dense", True), ("gmp", False)):
            history = r.result.get(key)
            history = history.get("history") if isinstance(history, dict) else history
            points = [(x, 100 * y) for x, y in known_pairs((h.get("epoch"), h.get("test_accuracy"))
                                                           for h in history or [] if isinstance(h, dict))]
            if points:
                name = {"history": "pruned", "dense": "dense", "gmp": "GMP"}[key]
                lines.append(plots.Line(prefix + name, [p[0] for p in points],
                                        [p[1] for p in points], color=i + len(records) * (key == "gmp"),
                                        dashed=dashed))
    if lines:
        path = plots.line_chart(out / FIGURES / "accuracy.png", lines, "Test accuracy per epoch", "epoch",
                                "test accuracy (%)")
        curves.figures.append(FigureRef(_rel(path, out), "Test accuracy per epoch, pruned (solid) vs dense (dashed)."))

    sections = [curves] if curves.figures else []
    layer_names = [[str(row.get("name")) for row in _layers(r)] for r in records]
    # runs of one architecture share their layers: one grouped chart compares them directly
    is_shared = len(records) > 1 and layer_names[0] and all(names == layer_names[0] for names in layer_names)
    if is_shared:
        bars = {r.label: [_share(row) for row in _layers(r)] for r in records}
        path = plots.bar_chart(out / FIGURES / "pruned-share.png", layer_names[0], bars, "Pruned share per layer",
                               "connections pruned (%)")
        sections.append(Section("Pruned share per layer", figures=[
            FigureRef(_rel(path, out), "Share of each layer's connections pruned by the end, one bar per run.")]))
    for i, r in enumerate(records):
        section = Section(f"Synaptic run {r.label}", _pruner_text(r))
        live = _live_lines(r)
        if live:
            path = plots.line_chart(out / FIGURES / f"{i:02d}-{_slug(r.label)}-live.png", live,
                                    f"Live connections per layer: {r.label}", "optimizer step",
                                    "live connections (% of layer)")
            section.figures.append(FigureRef(_rel(path, out), "Share of each layer's connections still live at "
                                                              "every check, over training steps."))
        layers = _layers(r)
        if layers and not is_shared:
            shares = [_share(row) for row in layers]
            path = plots.bar_chart(out / FIGURES / f"{i:02d}-{_slug(r.label)}-pruned.png",
                                   [str(row.get("name")) for row in layers], {"pruned": shares},
                                   f"Pruned share per layer: {r.label}", "connections pruned (%)")
            section.figures.append(FigureRef(_rel(path, out), "Share of each layer's connections pruned by the end."))
        if layers:
            section.tables.append(per_layer_table(r))
        if section.figures or section.tables:
            sections.append(section)
    return sections


def _layers(record: RunRecord) -> list[dict]:
    return [row for row in record.result.get("per_layer") or [] if isinstance(row, dict)]


def _share(row: dict) -> float:
    """Pruned share of a per-layer row in percent (NaN, drawn as a gap, when unknown)."""
    share = number(row.get("pruned_fraction"))
    if share is None:
        shares = [p / t for p, t in known_pairs([(row.get("pruned"), row.get("total"))]) if t > 0]
        share = shares[0] if shares else None
    return float("nan") if share is None else 100 * share


def _live_lines(record: RunRecord) -> list[plots.Line]:
    """Per-layer live share (%) at each check; totals from per_layer, else the first check."""
    checks = [c for c in record.result.get("checks") or [] if isinstance(c, dict) and isinstance(c.get("layers"), dict)]
    totals = {row.get("name"): number(row.get("total")) for row in record.result.get("per_layer") or []}
    names: list[str] = []
    for check in checks:
        names += [n for n in check["layers"] if n not in names]
    lines = []
    for j, name in enumerate(names):
        points = known_pairs((c.get("step"), (c["layers"].get(name) or {}).get("live")) for c in checks)
        total = totals.get(name) or (points[0][1] if points else None)
        if points and total:
            # every connection is live before the first check
            points = [(0.0, total), *points] if points[0][0] > 0 else points
            lines.append(plots.Line(f"{name} ({total:,.0f})", [p[0] for p in points],
                                    [100 * p[1] / total for p in points], color=j))
    return lines


def _pruner_text(record: RunRecord) -> list[str]:
    settings = record.result.get("pruner")
    if not isinstance(settings, dict):
        return []
    shown = ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None)
    return [f"Pruner settings: {shown}. Folder: `{record.path}`."]


def _depth_sections(records: list[RunRecord], out: Path) -> list[Section]:
    tradeoff = Section("Accuracy against cost", [("Each run joins its base model to its pruned model; other points "
                                                 "are candidate cuts the run evaluated.")])
    for cost, label, name in (("macs", "MACs per sample", "macs"),
                              ("latency", "measured latency at batch 1 (ms)", "latency")):
        series = _depth_series(records, cost)
        if series:
            path = plots.tradeoff_chart(out / FIGURES / f"depth-accuracy-vs-{name}.png", series,
                                        f"Accuracy vs {label}", label, "test accuracy (%)", is_count=cost == "macs")
            tradeoff.figures.append(FigureRef(_rel(path, out), f"Test accuracy against {label}, base and pruned."))
    sections = [tradeoff] if tradeoff.figures else []
    for r in records:
        if r.candidates:
            title = "Greedy search steps" if is_greedy(r) else "Candidate cuts"
            sections.append(Section(f"{title} of {r.label}", tables=[candidate_table(r)]))
    return sections


def _depth_series(records: list[RunRecord], cost: str) -> list[plots.Series]:
    series = []
    for r in records:
        points: list[tuple[float, float]] = []
        names: list[str] = []
        for side in ("base", "pruned"):
            x, y = metric(r.result, cost, side), metric(r.result, "accuracy", side)
            if x is not None and y is not None:
                points.append((x, 100 * y))
                names.append(side)
        if points:
            series.append(plots.Series(r.label, points, names, joined=True))
        candidates = [(x, 100 * y) for x, y in known_pairs((_candidate_value(c, cost), _candidate_value(c, "accuracy"))
                                                           for c in r.candidates)]
        if candidates:
            series.append(plots.Series(f"{r.label}: candidates", candidates))
    return series


def _candidate_value(row: dict, name: str) -> float | None:
    for key in (name, f"{name}_pruned", f"{name}_ms", f"{name}_after", f"pruned_{name}"):
        if number(row.get(key)) is not None:
            return number(row.get(key))
    return None


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "run"


def _rel(path: Path, out: Path) -> str:
    return path.relative_to(out).as_posix()
