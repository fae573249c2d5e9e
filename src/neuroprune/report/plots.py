"""Figures for reports: line, grouped-bar and trade-off charts written as PNG files.

The only module of neuroprune that imports matplotlib. It uses ``matplotlib.figure.Figure``
with the Agg canvas directly, never ``pyplot``, so building a report neither opens a
window nor changes the backend of the process that calls it (a notebook, for instance).
The functions take plain numbers; turning runs into numbers is done by the callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, MaxNLocator

_SIZE = (5.6, 3.5)  # inches; at 100 dpi 560 x 350 pixels, so two fit side by side on the page
_DPI = 100
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


@dataclass
class Line:
    """One curve of a line chart.

    Attributes:
        label: legend entry.
        x: x values.
        y: y values, as long as ``x``.
        color: index into the palette; curves that belong together (dense and pruned
            of one run) share it.
        dashed: draw dashed (used for the dense reference).
    """

    label: str
    x: list[float]
    y: list[float]
    color: int = 0
    dashed: bool = False


@dataclass
class Series:
    """Points of one method in a trade-off chart, joined in order when ``joined``.

    Attributes:
        label: legend entry.
        points: (x, y) pairs, e.g. (MACs, accuracy).
        names: optional text written next to each point.
        joined: draw a line through the points (base -> pruned of one run).
    """

    label: str
    points: list[tuple[float, float]]
    names: list[str] = field(default_factory=list)
    joined: bool = False


def line_chart(path: Path, lines: list[Line], title: str, xlabel: str, ylabel: str) -> Path:
    """Write a line chart of ``lines`` to ``path`` (PNG) and return ``path``."""
    figure, axes = _figure(title, xlabel, ylabel)
    for line in lines:
        axes.plot(line.x, line.y, label=line.label, color=_COLORS[line.color % len(_COLORS)],
                  linestyle="--" if line.dashed else "-", marker="o" if len(line.x) <= 30 else None, markersize=3)
    if all(float(x).is_integer() for line in lines for x in line.x):  # epochs, steps: no 1.25 ticks
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(axes, len(lines))
    return _save(figure, path)


def bar_chart(path: Path, categories: list[str], bars: dict[str, list[float]], title: str, ylabel: str) -> Path:
    """Write a grouped bar chart: one group per category, one bar per entry of ``bars``.

    Args:
        path: PNG file to write.
        categories: x-axis groups (e.g. layer names).
        bars: legend label -> one value per category (NaN leaves a gap).
        title: chart title.
        ylabel: y-axis label.
    """
    figure, axes = _figure(title, "", ylabel)
    width = 0.8 / max(len(bars), 1)
    for i, (label, values) in enumerate(bars.items()):
        positions = [c + (i - (len(bars) - 1) / 2) * width for c in range(len(categories))]
        axes.bar(positions, values, width=width, label=label, color=_COLORS[i % len(_COLORS)])
    axes.set_xticks(range(len(categories)))
    # long or many layer names would overlap when written horizontally
    rotate = sum(len(c) + 2 for c in categories) > 60
    axes.set_xticklabels(categories, rotation=45 if rotate else 0, ha="right" if rotate else "center", fontsize=8)
    if len(bars) > 1:
        _legend(axes, len(bars))
    return _save(figure, path)


def tradeoff_chart(path: Path, series: list[Series], title: str, xlabel: str, ylabel: str, log_x: bool = False,
                   is_count: bool = False) -> Path:
    """Write a scatter chart of accuracy against a cost (MACs, latency), one marker per method.

    Args:
        path: PNG file to write.
        series: one entry per method or run.
        title: chart title.
        xlabel: x-axis label (the cost).
        ylabel: y-axis label.
        log_x: logarithmic cost axis, for costs that span orders of magnitude.
        is_count: the cost is a count (MACs, parameters): ticks read 200k, 1.5M.
    """
    figure, axes = _figure(title, xlabel, ylabel)
    for i, s in enumerate(series):
        xs, ys = [p[0] for p in s.points], [p[1] for p in s.points]
        style = {"color": _COLORS[i % len(_COLORS)], "marker": _MARKERS[i % len(_MARKERS)]}
        axes.plot(xs, ys, linestyle="-" if s.joined else "none", label=s.label, markersize=6, **style)
        for name, x, y in zip(s.names, xs, ys, strict=False):  # names are optional: none, no labels
            axes.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if log_x:
        axes.set_xscale("log")
    if is_count:
        axes.xaxis.set_major_formatter(EngFormatter(sep=""))
    _legend(axes, len(series))
    return _save(figure, path)


def _figure(title: str, xlabel: str, ylabel: str):
    figure = Figure(figsize=_SIZE, dpi=_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    return figure, axes


def _legend(axes, entries: int) -> None:
    if not entries:
        return
    if entries <= 5:
        axes.legend(fontsize=7, loc="best")
    else:  # a long legend inside the axes would hide the data: put it underneath
        axes.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)


def _save(figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    # "tight" grows the image to hold a legend placed outside the axes
    figure.savefig(path, format="png", bbox_inches="tight", pad_inches=0.1)
    return path
