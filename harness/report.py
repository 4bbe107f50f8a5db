"""Outputs of a harness run: results.json, table.md/.csv/.tex, figures and report.html.

The main table has one row per model; its columns are the table metrics of the suites
that ran. A cell reads "unavailable" where the metric could not be measured (the
reasons are listed under the table) and "–" where it does not apply (spike entropy of
an ANN). The accuracy drop is taken against the non-topographic counterpart
(tsresnet18 → sresnet18, toponet_resnet18 → resnet18) of the same data tag in the run.
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from tdsnn.checkpoint import atomic_write

from . import figures, reported

#: (suite, metric, column title) of the main table, in order.
COLUMNS = (
    ("accuracy", "accuracy", "accuracy (%)"),
    ("accuracy", "accuracy_drop", "Δ accuracy vs baseline (pts)"),
    ("brainscore", "brainscore_V1", "V1"),
    ("brainscore", "brainscore_V2", "V2"),
    ("brainscore", "brainscore_V4", "V4"),
    ("brainscore", "brainscore_IT", "IT"),
    ("topography", "v1_orientation_smoothness", "V1 orientation smoothness"),
    ("topography", "v1_orientation_smoothness_chance", "(chance)"),
    ("topography", "it_category_smoothness", "IT category smoothness"),
    ("topography", "effective_dimensionality_IT", "IT effective dim."),
    ("robustness", "clean", "clean (%)"),
    ("robustness", "noise", "noise (%)"),
    ("robustness", "fgsm", "FGSM (%)"),
    ("robustness", "pgd", "PGD (%)"),
    ("robustness", "mask", "masking (%)"),
    ("temporal", "spike_entropy", "spike entropy (bits)"),
)
#: Topographic architecture -> its non-topographic baseline.
BASELINES = {"tsresnet18": "sresnet18", "toponet_resnet18": "resnet18"}
UNAVAILABLE = "unavailable"
NOT_APPLICABLE = "–"


def _metric(record: dict, suite: str, metric: str) -> tuple[Any, Optional[str]]:
    """(value or None, reason it is unavailable or None) of one table cell."""
    if "unavailable" in record:
        return None, record["unavailable"]
    result = record["suites"].get(suite)
    if result is None:
        return None, None
    if metric in result["metrics"]:
        return result["metrics"][metric], None
    prefix = metric.rsplit("_", 1)[0]
    for key in (metric, prefix, suite):
        if key in result["unavailable"]:
            return None, result["unavailable"][key]
    return None, None


def _baseline(record: dict, records: list[dict]) -> Optional[dict]:
    base = BASELINES.get(record["arch"])
    return next((r for r in records if r["arch"] == base and r["data"] == record["data"]), None)


def table_rows(results: dict) -> tuple[list[str], list[dict], list[str]]:
    """Column titles, rows ``{title: value | None}`` (value: float or "unavailable"), and
    the reasons for the unavailable cells, one line each."""
    records = results["models"]
    columns = [c for c in COLUMNS if c[0] in results["suites"]]
    titles, rows, reasons = ["model", "T"] + [c[2] for c in columns], [], {}
    for record in records:
        row = {"model": record["name"], "T": record["timesteps"] or "ANN"}
        for suite, metric, title in columns:
            if metric == "accuracy_drop":
                value, why = _metric(record, suite, "accuracy")
                base = _baseline(record, records)
                base_value = _metric(base, suite, "accuracy")[0] if base else None
                value = value - base_value if value is not None and base_value is not None else None
                why = why if base is not None else None
            else:
                value, why = _metric(record, suite, metric)
            row[title] = UNAVAILABLE if why else value
            if why:
                reasons.setdefault(why, {}).setdefault(record["name"], []).append(title)
        rows.append(row)
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = {}  # (why, columns) -> models
    for why, by_model in reasons.items():
        for model, cols in by_model.items():
            grouped.setdefault((why, tuple(cols)), []).append(model)
    return titles, rows, [f"{', '.join(models)} ({', '.join(cols)}): {why}" for (why, cols), models in grouped.items()]


def _fmt(value: Any) -> str:
    if value is None:
        return NOT_APPLICABLE
    if isinstance(value, float):
        return NOT_APPLICABLE if math.isnan(value) else f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"
    return str(value)


def benchmark_rows(results: dict) -> tuple[list[str], list[dict]]:
    """Brain-Score benchmarks (and local neural-data packs) as rows, models as columns:
    ceiled score or "unavailable: <reason>"."""
    records = [r for r in results["models"] if "brainscore" in r.get("suites", {})]
    ids: list[str] = []
    for r in records:
        details = r["suites"]["brainscore"]["details"]
        ids += [i for i in details.get("benchmarks", []) if i not in ids]
    rows = []
    for benchmark in ids:
        row = {"benchmark": benchmark}
        for r in records:
            result = r["suites"]["brainscore"]
            if benchmark in result["metrics"]:
                row[r["name"]] = result["metrics"][benchmark]
            else:
                row[r["name"]] = f"unavailable: {result['unavailable'].get(benchmark, 'not run')}"
        rows.append(row)
    return ["benchmark"] + [r["name"] for r in records], rows


def reported_rows() -> tuple[list[str], list[dict]]:
    titles = ["model", "accuracy (%)", "V1", "V2", "V4", "IT"]
    keys = ["accuracy", "V1", "V2", "V4", "IT"]
    return titles, [{"model": m, **{t: None if v.get(k) is None else str(v[k]) for t, k in zip(titles[1:], keys)}}
                    for m, v in reported.BRAIN_SCORES.items()]  # as published, to their own precision


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
    bench_titles, bench_rows = benchmark_rows(results)
    ref_titles, ref_rows = reported_rows()

    public = {**results, "models": [{**r, "suites": {s: {k: v for k, v in res.items() if k != "arrays"}
                                                       for s, res in r.get("suites", {}).items()}}
                                    for r in results["models"]]}
    atomic_write(paths["results.json"], lambda tmp: Path(tmp).write_text(json.dumps(public, indent=1)))

    md = ["# Model comparison", "", f"`{results['command']}`", "", _markdown(titles, rows), ""]
    if reasons:
        md += ["Unavailable:", ""] + [f"- {r}" for r in reasons] + [""]
    if bench_rows:
        md += ["## Brain-Score benchmarks (ceiled)", "", _markdown(bench_titles, bench_rows), ""]
    md += [f"## Reference: {reported.SOURCE}", "", _markdown(ref_titles, ref_rows), ""]
    md += [f"- {note}" for note in reported.NOTES] + [""]
    atomic_write(paths["table.md"], lambda tmp: Path(tmp).write_text("\n".join(md)))

    measured = pd.DataFrame([{t: row.get(t) for t in titles} for row in rows])
    measured.insert(0, "source", "measured")
    ref = pd.DataFrame(ref_rows)
    ref.insert(0, "source", reported.SOURCE)
    csv = pd.concat([measured, ref], ignore_index=True)
    atomic_write(paths["table.csv"], lambda tmp: csv.to_csv(tmp, index=False))

    tex = _latex(titles, rows, "Measured") + "\n" + _latex(ref_titles, ref_rows, reported.SOURCE)
    atomic_write(paths["table.tex"], lambda tmp: Path(tmp).write_text(tex))

    figure_paths = figures.draw_all(results["models"], out / "figures")
    atomic_write(paths["report.html"], lambda tmp: Path(tmp).write_text(
        _html(results, (titles, rows, reasons), (bench_titles, bench_rows), (ref_titles, ref_rows), figure_paths,
              out)))
    return paths


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
    if reasons:
        parts.append("<h3>Unavailable</h3><ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in reasons) + "</ul>")
    if benchmarks[1]:
        parts += ["<h2>Brain-Score benchmarks (ceiled)</h2>", _html_table(*benchmarks)]
    parts += [f"<h2>Reference: {html.escape(reported.SOURCE)}</h2>", _html_table(*ref),
              "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in reported.NOTES) + "</ul>", "<h2>Figures</h2>"]
    parts += [f'<figure><img src="{p.relative_to(out).as_posix()}" alt="{p.stem}"><figcaption>{p.stem}'
              f"</figcaption></figure>" for p in figure_paths]
    timing = [(r["name"], s, res["seconds"], res["cached"]) for r in results["models"]
              for s, res in r.get("suites", {}).items()]
    parts.append("<h2>Run</h2><table class='table'><tr><th>model</th><th>suite</th><th>seconds</th><th>cached</th></tr>"
                 + "".join(f"<tr><td>{html.escape(m)}</td><td>{s}</td><td>{t:.1f}</td><td>{c}</td></tr>"
                           for m, s, t, c in timing) + "</table>")
    parts.append("<p>" + ", ".join(f"{k} {v}" for k, v in results["versions"].items()) + "</p>")
    style = ("body{font-family:sans-serif;max-width:1400px;margin:2em auto}"
             ".table{border-collapse:collapse;font-size:13px}.table td,.table th{padding:3px 8px;"
             "border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>tdsnn comparison</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
