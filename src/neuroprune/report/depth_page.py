"""The Camacho et al. (2022) reproduction page, built from ``benchmarks/depth.py``'s JSON.

Every figure of the paper itself is unknown, so the page says so, shows what our depth
pruning measured, and sets it beside the peers whose figures are known (Torch-Pruning's
ResNet-56 and ResNet-50 results, a layer-pruning result on ResNet-110) and beside our own
runs of the peers (identity replacement, Torch-Pruning at equal measured latency).

The benchmark writes ``models``: per setting (``vgg16:0.25``) its ``variants`` (``base``,
``depth (search)``, ``identity``, ``torch-pruning (equal latency)``, ...), each with accuracy,
params, MACs and latency at batch 1 and 64, plus ``search_rows`` (the candidates scored
during the search). A ``runs`` list of settings whose methods are nested objects is read
the same way, so the page survives small changes of that format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import NeuropruneError
from . import plots
from ._provenance import Provenance, provenance_lines
from .claims import CAMACHO2022, LAYER_PRUNING, TORCH_PRUNING
from .html import FigureRef, Page, Section
from .record import known_pairs, number
from .tables import MISSING, Table, count, decimal, percent, ratio, text

BASE_NAMES = ("base", "dense", "unpruned", "original")
# each normalised value and the keys a benchmark may have used for it
_VALUE_KEYS = {"accuracy": ("accuracy", "test_accuracy"), "params": ("params",), "macs": ("macs",),
               "latency_b1": ("latency_ms_b1", "latency_ms"), "latency_b64": ("latency_ms_b64",)}
# validation_accuracy_in_search: the cut's score in the search; older files said accuracy_after_search
_DETAIL_KEYS = ("cut", "translator", "channel_ratio", "validation_accuracy_in_search", "accuracy_after_search")


def camacho2022_page(payload: dict[str, Any], provenance: Provenance) -> Page:
    """The reproduction page of Camacho et al. (2022).

    Args:
        payload: the parsed ``depth.json`` of ``benchmarks/depth.py``.
        provenance: how the numbers were obtained; figures go to ``provenance.out/figures``.

    Raises:
        NeuropruneError: the payload holds neither ``models`` nor ``runs``.
    """
    settings = settings_of(payload)
    if settings is None:
        raise NeuropruneError(f"{provenance.results} is not benchmarks/depth.py output: it has no 'models' or 'runs'")
    rows = [row for setting in settings for row in setting["rows"]]
    page = Page(
        "Reproduction: Camacho et al. (2022), neuroplasticity-based depth pruning",
        intro=[f"Paper: {CAMACHO2022.citation}, doi {CAMACHO2022.doi}.", CAMACHO2022.caveat,
               *provenance_lines(provenance, payload)],
    )
    page.sections.append(Section("The paper's claims beside our measurements", tables=[_claims_table(rows)]))
    page.sections.append(Section("Peers' published figures", tables=[_published_table()]))
    measured = Section("Our measurements: depth pruning and its peers", tables=[methods_table(rows)])
    measured.figures += _figures(settings, provenance.out)
    page.sections.append(measured)
    for setting in settings:
        if setting["candidates"]:
            page.sections.append(Section(f"Candidate cuts: {setting['name']}", tables=[_candidate_table(setting)]))
    return page


def settings_of(payload: dict[str, Any]) -> list[dict[str, Any]] | None:
    """One entry per benchmarked setting: ``name``, ``rows`` (one per method), ``candidates``.

    Returns None when the payload is not a depth benchmark's output.
    """
    dataset = payload.get("dataset")
    if isinstance(payload.get("models"), dict):
        entries = [(key, value) for key, value in payload["models"].items() if isinstance(value, dict)]
    elif isinstance(payload.get("runs"), list):
        entries = [(None, value) for value in payload["runs"] if isinstance(value, dict)]
    else:
        return None
    settings = []
    for key, entry in entries:
        name = _setting_name(key, entry, entry.get("dataset", dataset))
        variants: dict[str, Any] = entry["variants"] if isinstance(entry.get("variants"), dict) else {
            k: v for k, v in entry.items() if isinstance(v, dict) and any(n in v for n in ("accuracy", "macs"))}
        rows = [_row(name, method, values) for method, values in variants.items() if isinstance(values, dict)]
        base = next((r for r in rows if r["method"] in BASE_NAMES), None)
        for row in rows:
            row["base"] = base
        candidates = entry.get("search_rows") or entry.get("candidates") or []
        settings.append({"name": name, "rows": rows, "candidates": [c for c in candidates if isinstance(c, dict)]})
    return settings


def methods_table(rows: list[dict[str, Any]]) -> Table:
    """Every (setting, method) with accuracy and costs, relative to the setting's base."""
    table = Table("Depth pruning and peers, as measured",
                  ["setting", "method", "detail", "test accuracy", "vs base", "params", "MACs", "MACs fewer",
                   "latency b1 (ms)", "speed-up b1", "latency b64 (ms)", "speed-up b64"],
                  note="'vs base' is the accuracy difference in points; 'MACs fewer' and 'speed-up' are base / method. "
                       "Latency: median CPU time at batch 1 and 64, every model timed in one process.")
    for row in rows:
        base = row.get("base") or {}
        acc, base_acc = row["accuracy"], base.get("accuracy")
        diff = MISSING if acc is None or base_acc is None else f"{100 * (acc - base_acc):+.2f} pt"
        table.rows.append([row["setting"], row["method"], row["detail"] or MISSING, percent(acc), diff,
                           count(row["params"]), count(row["macs"]), ratio(base.get("macs"), row["macs"]),
                           decimal(row["latency_b1"]), ratio(base.get("latency_b1"), row["latency_b1"]),
                           decimal(row["latency_b64"], 1), ratio(base.get("latency_b64"), row["latency_b64"])])
    return table


def _row(setting: str, method: str, values: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"setting": setting, "method": method}
    for name, keys in _VALUE_KEYS.items():
        row[name] = next((number(values[k]) for k in keys if number(values.get(k)) is not None), None)
    detail = []
    for key in _DETAIL_KEYS:
        if key in values and values[key] is not None:
            shown = percent(values[key]) if "accuracy" in key else text(values[key])
            detail.append(f"{key.replace('_', ' ')} {shown}")
    row["detail"] = "; ".join(detail)
    return row


def _setting_name(key: str | None, entry: dict[str, Any], dataset: Any) -> str:
    model = entry.get("model") or (key.split(":")[0] if key else "?")
    width = entry.get("width") or (key.split(":")[1] if key and ":" in key else None)
    name = f"{model} (width {width})" if width not in (None, 1, 1.0, "1", "1.0") else str(model)
    return f"{name} on {dataset}" if dataset else name


def _claims_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("Camacho et al. (2022) claims and our numbers", ["setting", "quantity", "paper", "ours"],
                  note="The paper's own figures could not be obtained, so no row can be checked against it; our "
                       "numbers show what the method does in our settings (depth methods only; peers below).")
    ours = [r for r in rows if r["method"].lower().startswith(("depth", "translator"))]
    for claim in CAMACHO2022.claims:
        if claim.quantity.startswith("which networks"):
            shown = ", ".join(sorted({r["setting"] for r in rows})) or "not run"
        elif "accuracy" in claim.quantity:
            shown = _join(ours, lambda r: f"{percent(r['accuracy'])} vs {percent((r['base'] or {}).get('accuracy'))}")
        elif "MACs" in claim.quantity:
            shown = _join(ours, lambda r: f"MACs {ratio((r['base'] or {}).get('macs'), r['macs'])} fewer, params "
                                          f"{ratio((r['base'] or {}).get('params'), r['params'])} fewer")
        else:
            shown = _join(ours, lambda r: f"{ratio((r['base'] or {}).get('latency_b1'), r['latency_b1'])} at batch 1, "
                                          f"{ratio((r['base'] or {}).get('latency_b64'), r['latency_b64'])} at 64")
        note = f" ({claim.note})" if claim.note else ""
        table.rows.append([claim.setting, claim.quantity, claim.shown + note, shown])
    return table


def _published_table() -> Table:
    table = Table("Published figures of the peers (not measured here)", ["source", "setting", "quantity", "figure"],
                  note="Our benchmark's settings (models, widths, data) differ from these, so the figures give scale, "
                       "not a like-for-like comparison.")
    for paper in (TORCH_PRUNING, LAYER_PRUNING):
        for claim in paper.claims:
            figure = claim.shown + (f" ({claim.note})" if claim.note else "")
            table.rows.append([paper.citation, claim.setting, claim.quantity, figure])
    return table


def _candidate_table(setting: dict[str, Any]) -> Table:
    rows = setting["candidates"]
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns and not isinstance(row[k], (list, dict))]
    table = Table(f"Candidates scored by the search: {setting['name']}", columns, is_compact=True,
                  note="Accuracy after the search's short translator-only recovery, before the full recovery.")
    for row in rows:
        table.rows.append([percent(row[c]) if c == "accuracy" else text(row.get(c)) for c in columns])
    return table


def _figures(settings: list[dict[str, Any]], out: Path) -> list[FigureRef]:
    """Accuracy against MACs and against batch-1 latency, one chart per setting and cost."""
    figures = []
    for i, setting in enumerate(settings):
        for cost, label in (("macs", "MACs per sample"), ("latency_b1", "latency at batch 1 (ms)")):
            series = [plots.Series(row["method"],
                                   [(x, 100 * y) for x, y in known_pairs([(row[cost], row["accuracy"])])])
                      for row in setting["rows"]]
            candidate_key = "macs" if cost == "macs" else "latency_ms"
            candidates = known_pairs((c.get(candidate_key), c.get("accuracy")) for c in setting["candidates"])
            if candidates:
                series.append(plots.Series("search candidates", [(x, 100 * y) for x, y in candidates]))
            series = [s for s in series if s.points]
            if not series:
                continue
            path = plots.tradeoff_chart(out / "figures" / f"camacho2022-{i:02d}-accuracy-vs-{cost}.png", series,
                                        f"{setting['name']}", label, "test accuracy (%)", is_count=cost == "macs")
            figures.append(FigureRef("figures/" + path.name,
                                     f"{setting['name']}: test accuracy against {label}, one marker per method; "
                                     "search candidates after their short recovery only."))
    return figures


def _join(rows: list[dict[str, Any]], show) -> str:
    return "; ".join(f"{r['setting']}, {r['method']}: {show(r)}" for r in rows) if rows else "not run"
