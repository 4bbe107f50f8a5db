"""Outputs of a harness run: results.json, table.md/.csv/.tex, figures and report.html.

The main table has one row per model; its columns are the table metrics of the suites
that ran. A cell reads "unavailable" where the metric could not be measured (the
reasons are listed under the table), "–" where it does not apply (spike entropy of an
ANN), and "mean ± SEM" where the suite measured a spread (what the SEM is taken over is
listed under the table, ``spread_notes``). The accuracy drop is taken
against the non-topographic counterpart (tsresnet18 → sresnet18, toponet_resnet18 →
resnet18) of the same data tag in the run. The Brain-Score table marks unavailable cells
with a note number; each distinct reason is listed once under it.
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from tdsnn.analysis.robustness import PERTURBATION_LABELS
from tdsnn.checkpoint import atomic_write
from tdsnn.models import TWINS
from tdsnn.regions import REGIONS

from . import figures, paper_values, tradeoff_figure
from .suites import Cell, keys

#: Derived column: accuracy minus the baseline's accuracy (points).
ACCURACY_DROP = "accuracy_drop"
#: (suite, metric key, column title) of the main table, in order.
COLUMNS = (
    ("accuracy", keys.ACCURACY, "accuracy (%)"),
    ("accuracy", ACCURACY_DROP, "Δ accuracy vs baseline (pts)"),
    *(("brainscore", keys.BRAINSCORE[region], region) for region in REGIONS),
    ("topography", keys.V1_SMOOTHNESS["orientation"], "V1 orientation smoothness"),
    ("topography", keys.V1_SMOOTHNESS_CHANCE["orientation"], "(chance)"),
    ("topography", keys.IT_CATEGORY_SMOOTHNESS, "IT category smoothness"),
    ("topography", keys.EFFECTIVE_DIMENSIONALITY["IT"], "IT effective dim."),
    *(("robustness", keys.ROBUST_ACCURACY[p], f"{label} (%)") for p, label in PERTURBATION_LABELS.items()),
    ("temporal", keys.SPIKE_ENTROPY, "spike entropy (bits)"),
)
#: Topographic architecture -> its non-topographic baseline: the spiking twins of
#: ``tdsnn.models.TWINS`` and, for TopoNet, the ANN ResNet-18.
BASELINES = {**TWINS, "toponet_resnet18": "resnet18"}
UNAVAILABLE = "unavailable"
NOT_APPLICABLE = "–"


def _cell(record: dict, suite: str, key: str) -> Cell:
    """One table cell: the model's metric ``key`` of ``suite`` (empty when the suite did not run)."""
    if "unavailable" in record:
        return Cell(reason=record["unavailable"])
    result = record["suites"].get(suite)
    return result.cell(key) if result is not None else Cell()


def _baseline(record: dict, records: list[dict]) -> Optional[dict]:
    base = BASELINES.get(record["arch"])
    return next((r for r in records if r["arch"] == base and r["data"] == record["data"]), None)


def _drop(record: dict, records: list[dict]) -> Cell:
    """Accuracy minus the baseline's, with the SEMs combined where both were measured."""
    own = _cell(record, "accuracy", keys.ACCURACY)
    base_record = _baseline(record, records)
    if base_record is None:
        return Cell()  # no baseline in the run: not applicable
    base = _cell(base_record, "accuracy", keys.ACCURACY)
    if own.value is None or base.value is None:
        return Cell(reason=own.reason)
    sem = math.hypot(own.sem, base.sem) if own.sem is not None and base.sem is not None else None
    return Cell(own.value - base.value, sem)


def table_rows(results: dict) -> tuple[list[str], list[dict], list[str]]:
    """Column titles, rows ``{title: Cell | str}``, and the reasons for the unavailable
    cells, one line each."""
    records = results["models"]
    columns = [c for c in COLUMNS if c[0] in results["suites"]]
    titles, rows, reasons = ["model", "T"] + [c[2] for c in columns], [], {}
    for record in records:
        row = {"model": record["name"], "T": record["timesteps"] or "ANN"}
        for suite, key, title in columns:
            cell = _drop(record, records) if key == ACCURACY_DROP else _cell(record, suite, key)
            row[title] = cell
            if cell.reason:
                reasons.setdefault(cell.reason, {}).setdefault(record["name"], []).append(title)
        rows.append(row)
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = {}  # (why, columns) -> models
    for why, by_model in reasons.items():
        for model, cols in by_model.items():
            grouped.setdefault((why, tuple(cols)), []).append(model)
    return titles, rows, [f"{', '.join(models)} ({', '.join(cols)}): {why}" for (why, cols), models in grouped.items()]


def spread_notes(results: dict) -> list[str]:
    """What "±" means in the main table: each distinct ``details["spread"]`` of the suite
    results that measured a spread (cells read "mean ± SEM")."""
    notes = [res.details.get("spread") for r in results["models"] for res in r.get("suites", {}).values() if res.sem]
    return list(dict.fromkeys(n for n in notes if n))


def _number(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"


def _fmt(value: Any) -> str:
    """A cell as text: numbers to 3 decimals (2 from 10 up), "mean ± SEM", "unavailable", "–"."""
    if isinstance(value, Cell):
        if value.reason:
            return UNAVAILABLE
        value, sem = value.value, value.sem
        if value is not None and sem is not None and math.isfinite(value):
            return f"{_number(value)} ± {_number(sem)}"
    if value is None:
        return NOT_APPLICABLE
    if isinstance(value, float):
        return NOT_APPLICABLE if math.isnan(value) else _number(value)
    return str(value)


def benchmark_rows(results: dict) -> tuple[list[str], list[dict], list[str]]:
    """Brain-Score benchmarks (and local neural-data packs) as rows, models as columns:
    ceiled score, or "unavailable [n]" with reason n listed once in the notes returned."""
    records = [r for r in results["models"] if "brainscore" in r.get("suites", {})]
    ids: list[str] = []
    for r in records:
        ids += [i for i in r["suites"]["brainscore"].details.get("benchmarks", []) if i not in ids]
    notes: dict[str, int] = {}  # reason -> note number
    rows = []
    for benchmark in ids:
        row = {"benchmark": benchmark}
        for r in records:
            result = r["suites"]["brainscore"]
            if benchmark in result.metrics:
                row[r["name"]] = result.metrics[benchmark]
            else:
                why = result.unavailable.get(benchmark, f"not run for {r['name']}")
                row[r["name"]] = f"{UNAVAILABLE} [{notes.setdefault(why, len(notes) + 1)}]"
        rows.append(row)
    return ["benchmark"] + [r["name"] for r in records], rows, [f"[{n}] {why}" for why, n in notes.items()]


def reported_rows() -> tuple[list[str], list[dict]]:
    titles = ["model", "accuracy (%)", *REGIONS]
    columns = ["accuracy", *REGIONS]
    return titles, [{"model": m, **{t: None if v.get(k) is None else str(v[k]) for t, k in zip(titles[1:], columns)}}
                    for m, v in paper_values.BRAIN_SCORES.items()]  # as published, to their own precision


def _markdown(titles: list[str], rows: list[dict]) -> str:
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    lines += ["| " + " | ".join(_fmt(row.get(t)) for t in titles) + " |" for row in rows]
    return "\n".join(lines)


def _frame(titles: list[str], rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([[_fmt(row.get(t)) for t in titles] for row in rows], columns=titles)


def write(out: Path, results: dict) -> dict[str, Path]:
    """Write every output of ``results`` (``harness.score`` records) under ``out``;
    returns their paths by file name."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("results.json", "table.md", "table.csv", "table.tex", "report.html")}
    titles, rows, reasons = table_rows(results)
    bench_titles, bench_rows, bench_notes = benchmark_rows(results)
    ref_titles, ref_rows = reported_rows()

    public = {**results, "models": [{**r, "suites": {name: res.to_json(arrays=False)
                                                       for name, res in r.get("suites", {}).items()}}
                                    for r in results["models"]]}
    atomic_write(paths["results.json"], lambda tmp: Path(tmp).write_text(json.dumps(public, indent=1)))

    md = ["# Model comparison", "", f"`{results['command']}`", "", _markdown(titles, rows), ""]
    spread = spread_notes(results)
    md += [f"- {note}" for note in spread] + ([""] if spread else [])
    if reasons:
        md += ["Unavailable:", ""] + [f"- {r}" for r in reasons] + [""]
    if bench_rows:
        md += ["## Brain-Score benchmarks (ceiled)", "", _markdown(bench_titles, bench_rows), ""]
        md += [f"- {note}" for note in bench_notes] + ([""] if bench_notes else [])
    md += [f"## Reference: {paper_values.SOURCE}", "", _markdown(ref_titles, ref_rows), ""]
    md += [f"- {note}" for note in paper_values.NOTES] + [""]
    atomic_write(paths["table.md"], lambda tmp: Path(tmp).write_text("\n".join(md)))

    measured = pd.DataFrame(_csv_rows(titles, rows))
    measured.insert(0, "source", "measured")
    ref = pd.DataFrame(ref_rows)
    ref.insert(0, "source", paper_values.SOURCE)
    csv = pd.concat([measured, ref], ignore_index=True)
    atomic_write(paths["table.csv"], lambda tmp: csv.to_csv(tmp, index=False))

    tex = _latex(titles, rows, "Measured") + "\n" + _latex(ref_titles, ref_rows, paper_values.SOURCE)
    atomic_write(paths["table.tex"], lambda tmp: Path(tmp).write_text(tex))

    figure_paths = figures.draw_all(results["models"], out / "figures")
    figure_paths += tradeoff_figure.report_figures(results["models"], out / "figures")  # sweeps of its models
    atomic_write(paths["report.html"], lambda tmp: Path(tmp).write_text(
        _html(results, (titles, rows, reasons), (bench_titles, bench_rows, bench_notes), (ref_titles, ref_rows),
              figure_paths, out)))
    return paths


def _csv_rows(titles: list[str], rows: list[dict]) -> list[dict]:
    """Rows of plain values ("unavailable" for unavailable cells), with a "<title> SEM"
    column after each column that has a measured spread."""
    spread = {t for row in rows for t in titles if isinstance(row.get(t), Cell) and row[t].sem is not None}
    plain = []
    for row in rows:
        out = {}
        for t in titles:
            value = row.get(t)
            out[t] = (UNAVAILABLE if value.reason else value.value) if isinstance(value, Cell) else value
            if t in spread:
                out[f"{t} SEM"] = value.sem if isinstance(value, Cell) else None
        plain.append(out)
    return plain


def _latex(titles: list[str], rows: list[dict], caption: str) -> str:
    """A booktabs table with LaTeX's special characters (%, _, &, ...) escaped."""
    style = _frame(titles, rows).style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    return style.to_latex(hrules=True, caption=caption.replace("%", r"\%"))


def _html_table(titles: list[str], rows: list[dict]) -> str:
    return _frame(titles, rows).to_html(index=False, border=0, classes="table")


def _html(results: dict, main, benchmarks, ref, figure_paths: list[Path], out: Path) -> str:
    titles, rows, reasons = main
    parts = [f"<h1>Model comparison</h1><p><code>{html.escape(results['command'])}</code><br>"
             f"started {results['started']}, {results['seconds']:.0f} s, device {results['device']}</p>",
             _html_table(titles, rows)]
    spread = spread_notes(results)
    if spread:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in spread) + "</ul>")
    if reasons:
        parts.append("<h3>Unavailable</h3><ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in reasons) + "</ul>")
    bench_titles, bench_rows, bench_notes = benchmarks
    if bench_rows:
        parts += ["<h2>Brain-Score benchmarks (ceiled)</h2>", _html_table(bench_titles, bench_rows)]
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in bench_notes) + "</ul>")
    parts += [f"<h2>Reference: {html.escape(paper_values.SOURCE)}</h2>", _html_table(*ref),
              "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in paper_values.NOTES) + "</ul>", "<h2>Figures</h2>"]
    parts += [f'<figure><img src="{p.relative_to(out).as_posix()}" alt="{p.stem}"><figcaption>{p.stem}'
              f"</figcaption></figure>" for p in figure_paths]
    timing = [(r["name"], s, NOT_APPLICABLE if res.seconds is None else f"{res.seconds:.1f}", res.cached)
              for r in results["models"] for s, res in r.get("suites", {}).items()]
    parts.append("<h2>Run</h2><table class='table'><tr><th>model</th><th>suite</th><th>seconds</th><th>cached</th></tr>"
                 + "".join(f"<tr><td>{html.escape(m)}</td><td>{s}</td><td>{t}</td><td>{c}</td></tr>"
                           for m, s, t, c in timing) + "</table>")
    parts.append("<p>" + ", ".join(f"{k} {v}" for k, v in results["versions"].items()) + "</p>")
    style = ("body{font-family:sans-serif;max-width:1400px;margin:2em auto}"
             ".table{border-collapse:collapse;font-size:13px}.table td,.table th{padding:3px 8px;"
             "border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>tdsnn comparison</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
