"""The accuracy–topography trade-off of a sweep (the paper's Fig. 5): its points, each
family's curve, the baselines' seed spread, accuracy at matched smoothness, and the files
``tradeoff.json``, ``tradeoff.md`` and ``tradeoff.png``
(``harness.tradeoff_figure``).

A point record holds the family, strengths, seed, test accuracy (%), V1 orientation
smoothness and IT category smoothness (each with its SEM where the topography suite
measured one, and its chance level), the variant name and the sha256 of its weights. The
curves, matched level and interpolation use V1 orientation smoothness, the paper's Fig. 5
axis; IT category smoothness is summarized beside it (at a small width V1 has few units
in its analysis window, while IT's spans most of its sheet). A family's curve has one point per strength setting:
the mean over its seeds (± the sample standard deviation over seeds where there are two or
more). A family with no all-zero strength setting starts its curve at its non-topographic
baseline (``harness.report.BASELINES``) when the sweep has it: a TopoNet at τ = 0 is its
ResNet18. Curves are drawn, and read, with their points ordered by smoothness and joined
by straight lines; the accuracy at a smoothness level is read off that polyline by linear
interpolation and is not extrapolated beyond its ends. The matched level is the sweep's
``matched_smoothness`` or, by default, the most smoothness every topographic curve reaches
(the smallest of the curves' maxima), provided every curve reaches down to it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from tdsnn.checkpoint import atomic_write

from . import tradeoff_figure
from .report import BASELINES
from .sweep_config import Point, Sweep, strength_text

JSON, MARKDOWN = "tradeoff.json", "tradeoff.md"
#: How the spread over seeds is stated.
SPREAD = "mean ± s.d. over seeds: sample standard deviation, none for one seed"
MATCHED_DEFAULT = "the most V1 orientation smoothness every topographic curve reaches (the smallest curve maximum)"


def point_record(point: Point, scores: dict[str, Optional[float]], sha256: str, key: str,
                 training: Optional[dict]) -> dict[str, Any]:
    """The record of one finished point (``scores``: accuracy, its SEM, smoothness, its SEM, chance)."""
    return {"name": point.name, "family": point.family, "strengths": dict(point.strengths), "seed": point.seed,
            **scores, "weights_sha256": sha256, "key": key, "training": training}


def spread(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (None for fewer than two) and count of ``values``."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"mean": None, "std": None, "n": 0}
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else None
    return {"mean": float(np.mean(finite)), "std": std, "n": len(finite)}


def _group(records: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault(tuple(sorted(r["strengths"].items())), []).append(r)
    return groups


def _measure(records: list[dict], key: str) -> dict[str, Any]:
    """``spread`` of the records' ``key``, with ``sem``: the SEM within the one network of a
    one-seed setting (None for several seeds, whose spread is their s.d.)."""
    sem = records[0].get(f"{key}_sem") if len(records) == 1 else None
    return {**spread([r.get(key) for r in records]), "sem": sem}


def _summary(records: list[dict], strengths: dict[str, float], source: str) -> dict[str, Any]:
    return {"strengths": strengths, "seeds": [r["seed"] for r in records], "source": source,
            "accuracy": spread([r["accuracy"] for r in records]),
            "smoothness": _measure(records, "v1_orientation_smoothness"),
            "it_smoothness": _measure(records, "it_category_smoothness")}


def baselines(records: list[dict], sweep: Sweep) -> dict[str, dict]:
    """Each non-topographic family's accuracy and smoothness over its seeds."""
    found = {}
    for family, names in sweep.families.items():
        own = [r for r in records if r["family"] == family]
        if not names and own:
            found[family] = _summary(own, {}, family)
    return found


def curves(records: list[dict], sweep: Sweep) -> dict[str, list[dict]]:
    """Each topographic family's curve: one summary per strength setting, ordered by mean
    smoothness, starting at its baseline where it has no all-zero setting."""
    base = baselines(records, sweep)
    found = {}
    for family, names in sweep.families.items():
        own = [r for r in records if r["family"] == family]
        if not names or not own:
            continue
        curve = [_summary(group, dict(key), family) for key, group in _group(own).items()]
        zero = dict.fromkeys(names, 0.0)
        if not any(c["strengths"] == zero for c in curve) and BASELINES.get(family) in base:
            curve.append({**base[BASELINES[family]], "strengths": zero})
        found[family] = sorted(curve, key=lambda c: _x(c) if _x(c) is not None else math.inf)
    return found


def _x(summary: dict) -> Optional[float]:
    return summary["smoothness"]["mean"]


def _xy(curve: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    points = [(_x(c), c["accuracy"]["mean"]) for c in curve if _x(c) is not None and c["accuracy"]["mean"] is not None]
    xy = np.array(sorted(points), dtype=float).reshape(-1, 2)
    return xy[:, 0], xy[:, 1]


def interpolate(smoothness: np.ndarray, accuracy: np.ndarray, level: float) -> Optional[float]:
    """Accuracy at ``level`` on the polyline through (smoothness, accuracy) ordered by
    smoothness; None outside its range (no extrapolation)."""
    order = np.argsort(smoothness, kind="stable")
    x, y = np.asarray(smoothness, float)[order], np.asarray(accuracy, float)[order]
    if x.size == 0 or not x[0] <= level <= x[-1]:
        return None
    return float(np.interp(level, x, y))


def matched_level(family_curves: dict[str, list[dict]]) -> Optional[float]:
    """The smallest of the curves' maximum smoothness, if every curve reaches down to it."""
    ranges = [(x.min(), x.max()) for x, _ in map(_xy, family_curves.values()) if x.size]
    if not ranges or len(ranges) < len(family_curves):
        return None
    top = min(high for _, high in ranges)
    return float(top) if all(low <= top for low, _ in ranges) else None


def matched(family_curves: dict[str, list[dict]], base: dict[str, dict], level: Optional[float],
            chosen: bool) -> dict[str, Any]:
    """Each family's accuracy at smoothness ``level`` and its difference from its baseline's mean."""
    how = "matched_smoothness of the sweep file" if chosen else MATCHED_DEFAULT
    result: dict[str, Any] = {"level": level, "how": how, "families": {}}
    for family, curve in family_curves.items():
        x, y = _xy(curve)
        accuracy = interpolate(x, y, level) if level is not None else None
        baseline = base.get(BASELINES.get(family, ""), {}).get("accuracy", {}).get("mean")
        result["families"][family] = {
            "accuracy": accuracy, "baseline": BASELINES.get(family) if baseline is not None else None,
            "baseline_accuracy": baseline,
            "delta": accuracy - baseline if accuracy is not None and baseline is not None else None,
            "range": [float(x.min()), float(x.max())] if x.size else None}
    return result


def summarize(sweep: Sweep, records: list[dict], pending: list[str], command: str) -> dict[str, Any]:
    """The content of ``tradeoff.json``: the sweep, every finished point (in run order),
    the pending ones, the curves, the baselines and the matched-smoothness comparison."""
    order = {p.name: i for i, p in enumerate(sweep.points)}
    records = sorted(records, key=lambda r: order[r["name"]])
    family_curves, base = curves(records, sweep), baselines(records, sweep)
    chosen = sweep.matched_smoothness is not None
    level = sweep.matched_smoothness if chosen else matched_level(family_curves)
    return {"sweep": sweep.name, "description": sweep.description, "config": sweep.path.as_posix(),
            "command": command, "data": sweep.data, "spread": SPREAD,
            "families": {f: list(names) for f, names in sweep.families.items()},
            "points": records, "pending": pending, "curves": family_curves, "baselines": base,
            "matched": matched(family_curves, base, level, chosen)}


def _num(value: Optional[float], digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _with_sem(value: Optional[float], sem: Optional[float], digits: int) -> str:
    return _num(value, digits) + (f" ± {sem:.{digits}f} (SEM)" if value is not None and sem is not None else "")


def _with_spread(s: dict, digits: int) -> str:
    if s["mean"] is None:
        return "–"
    return _num(s["mean"], digits) + (f" ± {_num(s['std'], digits)}" if s["std"] is not None else "")


def markdown(summary: dict[str, Any]) -> str:
    """``tradeoff.md``: the description, the points, the curves with the baselines, and
    the accuracy at matched smoothness."""
    lines = [f"# Accuracy–topography trade-off: sweep `{summary['sweep']}` ({summary['data']})", ""]
    if summary["description"]:
        lines += [summary["description"], ""]
    lines += [f"Made with `{summary['command']}` (sweep file `{summary['config']}`).", "",
              "| variant | family | strengths | seed | accuracy (%) | V1 orientation smoothness | (chance) "
              "| IT category smoothness | (chance) | epochs | train acc. gain, last ¼ of epochs (pts) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["points"]:
        smooth, it = (_with_sem(r.get(k), r.get(f"{k}_sem"), 3)
                      for k in ("v1_orientation_smoothness", "it_category_smoothness"))
        accuracy = _with_sem(r["accuracy"], r.get("accuracy_sem"), 2)
        training = r.get("training") or {}
        lines.append(f"| `{r['name']}` | {r['family']} | {strength_text(r['strengths'])} | {r['seed']} | {accuracy} | "
                     f"{smooth} | {_num(r['v1_orientation_smoothness_chance'], 3)} | {it} | "
                     f"{_num(r.get('it_category_smoothness_chance'), 3)} | {training.get('epochs', '–')} | "
                     f"{_num(training.get('late_gain'), 2)} |")
    if summary["pending"]:
        lines += ["", "Not finished yet: " + ", ".join(f"`{n}`" for n in summary["pending"]) + "."]
    lines += ["", f"## Curves and baselines ({summary['spread']})", "",
              "| family | strengths | seeds | accuracy (%) | V1 orientation smoothness | IT category smoothness |",
              "|---|---|---|---|---|---|"]
    for family, curve in summary["curves"].items():
        for c in sorted(curve, key=lambda c: tuple(c["strengths"].values())):  # by strength, for reading
            source = f" ({c['source']})" if c["source"] != family else ""
            lines.append(f"| {family} | {strength_text(c['strengths'])}{source} | {len(c['seeds'])} | "
                         f"{_with_spread(c['accuracy'], 2)} | {_with_spread(c['smoothness'], 3)} | "
                         f"{_with_spread(c['it_smoothness'], 3)} |")
    for family, b in summary["baselines"].items():
        lines.append(f"| {family} (baseline) | – | {len(b['seeds'])} | {_with_spread(b['accuracy'], 2)} | "
                     f"{_with_spread(b['smoothness'], 3)} | {_with_spread(b['it_smoothness'], 3)} |")
    m = summary["matched"]
    lines += ["", "## Accuracy at matched V1 orientation smoothness", ""]
    if m["level"] is None:
        lines += ["No smoothness level is reached by every topographic curve"
                  + (" (or the sweep has no finished topographic curve)." if not m["families"] else "."), ""]
    else:
        lines += [f"Level {m['level']:.3f}: {m['how']}; accuracy read off each curve by linear interpolation "
                  "between its neighbouring points (no extrapolation).", ""]
    lines += ["| family | smoothness range of its curve | accuracy at the level (%) | baseline | baseline accuracy (%) "
              "| Δ (pts) |", "|---|---|---|---|---|---|"]
    for family, f in m["families"].items():
        span = "–" if f["range"] is None else f"{f['range'][0]:.3f} – {f['range'][1]:.3f}"
        delta = "–" if f["delta"] is None else f"{f['delta']:+.2f}"
        lines.append(f"| {family} | {span} | {_num(f['accuracy'], 2)} | {f['baseline'] or '–'} | "
                     f"{_num(f['baseline_accuracy'], 2)} | {delta} |")
    return "\n".join(lines) + "\n"


def read_points(folder: Path) -> dict[str, dict]:
    """The finished point records of an earlier ``tradeoff.json`` in ``folder``, by variant
    name; none when it is missing or unreadable (its points are then done again)."""
    try:
        data = json.loads((folder / JSON).read_text())
        return {r["name"]: r for r in data["points"] if isinstance(r, dict) and isinstance(r.get("name"), str)}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def write_if_changed(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically unless it already holds it."""
    if not (path.is_file() and path.read_bytes() == data):
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def write(folder: Path, summary: dict[str, Any]) -> list[Path]:
    """``tradeoff.json``, ``tradeoff.md`` and ``tradeoff.png`` in ``folder``, each
    rewritten only when it changes; their paths."""
    files = {JSON: (json.dumps(summary, indent=1, ensure_ascii=False) + "\n").encode(),
             MARKDOWN: markdown(summary).encode(), tradeoff_figure.FIGURE: tradeoff_figure.png(summary)}
    for name, data in files.items():
        write_if_changed(folder / name, data)
    return [folder / name for name in files]
