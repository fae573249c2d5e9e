"""Tables of runs: a plain :class:`Table` of formatted cells, and the builders a report uses.

Cells are strings formatted once here, so the HTML page and the Markdown file show the
same digits. A value a run did not record is shown as :data:`MISSING`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from .record import RunRecord, latency_batches, metric, number

MISSING = "–"
# candidate columns shown first, and those that repeat the cut's name in another form
_CANDIDATE_FIRST = ("cut", "translator", "params", "macs", "latency_ms", "accuracy", "score")
_CANDIDATE_HIDDEN = ("origin", "destination")
_CELL_CHARS = 60


@dataclass
class Table:
    """A titled table of already formatted cells.

    Attributes:
        title: shown above the table.
        columns: header cells.
        rows: one list of cells per row, as long as ``columns``.
        note: a sentence shown under the table (units, caveats); may be empty.
        is_compact: keep every cell on one line (tables of numbers); the page scrolls
            sideways instead of wrapping them.
    """

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""
    is_compact: bool = False

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table with its title and note."""
        def cell(text: str) -> str:
            return text.replace("|", "\\|").replace("\n", " ")

        lines = [f"**{self.title}**", "", "| " + " | ".join(map(cell, self.columns)) + " |",
                 "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(map(cell, row)) + " |" for row in self.rows]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        """An HTML ``<table>`` with a caption; every cell is escaped."""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>\n" for row in self.rows)
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        css = ' class="compact"' if self.is_compact else ""
        return (f'<div class="table"><table{css}><caption>{html.escape(self.title)}</caption>\n'
                f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table>{note}</div>")


def percent(value: Any, digits: int = 2) -> str:
    """A fraction in [0, 1] as ``"12.34%"``; :data:`MISSING` when absent."""
    x = number(value)
    return MISSING if x is None else f"{100 * x:.{digits}f}%"


def count(value: Any) -> str:
    """An integer with thousands separators; :data:`MISSING` when absent."""
    x = number(value)
    return MISSING if x is None else f"{x:,.0f}"


def decimal(value: Any, digits: int = 3) -> str:
    """A float with ``digits`` decimals; :data:`MISSING` when absent."""
    x = number(value)
    return MISSING if x is None else f"{x:.{digits}f}"


def ratio(before: Any, after: Any, suffix: str = "x") -> str:
    """``before / after`` as ``"2.57x"`` (how many times smaller or faster)."""
    b, a = number(before), number(after)
    return MISSING if b is None or a is None or a == 0 else f"{b / a:.2f}{suffix}"


def text(value: Any) -> str:
    """Any JSON value as a short cell: numbers compact, lists joined, None as :data:`MISSING`."""
    if value is None or value == "":
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        if all(isinstance(v, (int, float)) for v in value):
            return " ".join(text(v) for v in value)
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k}={text(v)}" for k, v in value.items())
    return str(value)


def synaptic_table(records: list[RunRecord]) -> Table:
    """Synaptic runs side by side: accuracy with and without pruning, size, speed."""
    table = Table(
        "Synaptic pruning runs",
        ["run", "data set", "model", "epochs", "accuracy pruned", "accuracy dense", "difference", "accuracy GMP",
         "connections pruned", "params dense → compact", "MACs dense → compact",
         "latency batch 1 (ms) dense → compact", "train s"],
        note="Accuracy is test accuracy after the last epoch. 'dense' is the same network and seed trained without "
             "pruning (only when the run used --compare-dense); 'GMP' the same network, seed and schedule pruned by "
             "gradual magnitude pruning to the same share of connections (--compare-gmp), params: its compacted "
             "size. Params and MACs of the compacted model, dead units removed. Latency: median CPU time in the "
             "run's own process.",
    )
    for r in records:
        res = r.result
        dense: dict[str, Any] = res["dense"] if isinstance(res.get("dense"), dict) else {}
        gmp: dict[str, Any] = res["gmp"] if isinstance(res.get("gmp"), dict) else {}
        acc, dense_acc = number(res.get("test_accuracy")), number(dense.get("test_accuracy"))
        diff = MISSING if acc is None or dense_acc is None else f"{100 * (acc - dense_acc):+.2f} pt"
        latency: dict[str, Any] = (res.get("latency_ms") or {}).get("batch_1") or {}
        gmp_cell = MISSING if not gmp else (f"{percent(number(gmp.get('test_accuracy')))} "
                                            f"({count(gmp.get('params_compact'))} params)")
        table.rows.append([
            r.label, text(res.get("dataset")), text(res.get("model")), text(res.get("epochs")),
            percent(acc), percent(dense_acc), diff, gmp_cell, percent(res.get("pruned_fraction"), 1),
            f"{count(res.get('params_dense'))} → {count(res.get('params_compact'))}",
            f"{count(res.get('macs_dense'))} → {count(res.get('macs_compact'))}",
            f"{decimal(latency.get('dense'))} → {decimal(latency.get('compact'))}",
            decimal(res.get("train_seconds"), 1),
        ])
    return table


def per_layer_table(record: RunRecord) -> Table:
    """Connections pruned and units removed in each layer of one synaptic run."""
    table = Table(f"Per layer: {record.label}",
                  ["layer", "connections", "pruned", "pruned share", "units", "dead units"],
                  is_compact=True)
    for row in record.result.get("per_layer") or []:
        total, pruned = number(row.get("total")), number(row.get("pruned"))
        share = row.get("pruned_fraction", pruned / total if total and pruned is not None else None)
        table.rows.append([text(row.get("name")), count(total), count(pruned), percent(share, 1),
                           count(row.get("units")), count(row.get("dead_units"))])
    return table


def depth_table(records: list[RunRecord]) -> Table:
    """Depth-pruning runs side by side: the cut, accuracy, and what it saved."""
    table = Table(
        "Depth pruning runs",
        ["run", "data set", "model", "cut", "bridge", "accuracy base", "accuracy pruned", "difference",
         "params base → pruned", "MACs base → pruned", "MACs fewer", "latency (ms) base → pruned, speed-up",
         "recovery epochs"],
        note="Latency is the run's own median CPU measurement of both models in one process, per batch size.",
    )
    for r in records:
        res = r.result
        m = {f"{n}_{s}": metric(res, n, s) for n in ("accuracy", "params", "macs") for s in ("base", "pruned")}
        acc, base = m["accuracy_pruned"], m["accuracy_base"]
        recovery: dict[str, Any] = res["recovery"] if isinstance(res.get("recovery"), dict) else {}
        table.rows.append([
            r.label, text(res.get("dataset")), text(res.get("model")), _cut(res), _bridge(res),
            percent(base), percent(acc), MISSING if acc is None or base is None else f"{100 * (acc - base):+.2f} pt",
            f"{count(m['params_base'])} → {count(m['params_pruned'])}",
            f"{count(m['macs_base'])} → {count(m['macs_pruned'])}", ratio(m["macs_base"], m["macs_pruned"]),
            _latencies(res), text(recovery.get("epochs")),
        ])
    return table


def _latencies(result: dict[str, Any]) -> str:
    batches = latency_batches(result) or ["batch_1"]
    shown = []
    for batch in batches:
        before, after = metric(result, "latency", "base", batch), metric(result, "latency", "pruned", batch)
        if before is not None or after is not None:
            shown.append(f"{batch.replace('batch_', 'batch ')}: {decimal(before)} → {decimal(after)} "
                         f"({ratio(before, after)})")
    return "; ".join(shown) or MISSING


def _bridge(result: dict[str, Any]) -> str:
    cut = result.get("cut")
    if not isinstance(cut, dict):
        return MISSING
    translator = cut.get("translator")
    if isinstance(translator, dict) and translator.get("description"):
        return str(translator["description"])
    return text(cut.get("bridge"))


def candidate_table(record: RunRecord, limit: int = 30) -> Table:
    """The depth run's candidate cuts, with every column the run saved.

    Lists of removed units are shown as their count, first and last name; other long
    cells are cut short. Only the first ``limit`` rows are shown (the note says where
    the whole table is).
    """
    rows = record.candidates
    columns = [c for c in _CANDIDATE_FIRST if any(c in row for row in rows)]
    for row in rows:
        columns += [k for k in row if k not in columns and k not in _CANDIDATE_HIDDEN]
    if "cut" not in columns:  # without the joined form, keep its two halves
        columns += [k for k in ("origin", "destination") if any(k in row for row in rows) and k not in columns]

    def cell(column: str, value: Any) -> str:
        if "accuracy" in column and number(value) is not None:
            return percent(value)
        if column == "removed" and isinstance(value, list) and len(value) > 2:
            return f"{len(value)}: {value[0]} … {value[-1]}"
        if column.endswith("shape") and isinstance(value, list):
            return "×".join(map(str, value))
        shown = text(value)
        return shown if len(shown) <= _CELL_CHARS else shown[: _CELL_CHARS - 1] + "…"

    note = f"First {limit} of {len(rows)} candidates; all are in {record.path}." if len(rows) > limit else ""
    title = "Greedy search steps" if is_greedy(record) else "Candidate cuts"
    return Table(f"{title}: {record.label}", columns,
                 [[cell(c, row.get(c)) for c in columns] for row in rows[:limit]], note, is_compact=True)


def is_greedy(record: RunRecord) -> bool:
    """True for a depth run whose search removed segments greedily (its table holds steps, not candidates)."""
    search = record.result.get("search")
    return isinstance(search, dict) and search.get("strategy") == "greedy"


def other_table(records: list[RunRecord]) -> Table:
    """Runs of a method this report has no special view for: their top-level numbers and words."""
    columns = ["run", "method"]
    for r in records:
        columns += [k for k, v in r.result.items() if k not in columns and not isinstance(v, (list, dict))]
    return Table("Other runs", columns,
                 [[r.label, r.method] + [text(r.result.get(c)) for c in columns[2:]] for r in records])


def _cut(result: dict[str, Any]) -> str:
    cut = result.get("cut")
    if isinstance(cut, dict):
        cut = cut.get("cut") or ":".join(str(cut.get(k, "?")) for k in ("origin", "destination"))
    if isinstance(cut, list):
        cut = "; ".join(text(c) for c in cut)
    return text(cut)
