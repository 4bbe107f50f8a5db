"""The trade-off figure of a sweep (``tradeoff.png``) and where a sweep's files live.

Left panel, measured: test accuracy against V1 orientation smoothness, one curve per
topographic family (points ordered by smoothness, each labelled with its strengths; error
bars: s.d. over seeds where a setting has several, else, faint, the SEM within its one
network), the non-topographic baselines as
points with their seed spread (mean ± s.d., each seed drawn faintly), and the matched
smoothness level as a dashed line. Middle panel: the same against IT category smoothness
(points ordered by it). Right panel, "reported (ImageNet)": the paper's TSResNet18
(α, β) -> (accuracy, smoothness) points and its non-topographic SResNet18; a setting
whose accuracy the paper does not state is a dotted line at its smoothness.

A sweep's ``tradeoff.{json,md,png}`` live in ``sweeps/<sweep>/`` beside the registry file
its variants are registered in, as their weights live in ``weights/`` there; a harness
report of models that belong to a sweep includes the sweep's figure.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

from tdsnn import registry  # noqa: E402
from tdsnn.checkpoint import atomic_write  # noqa: E402
from tdsnn.names import check_part  # noqa: E402

from . import paper_values  # noqa: E402
from .sweep_config import STRENGTH_SYMBOLS, strength_text  # noqa: E402

FIGURE = "tradeoff.png"
REPORTED_BASELINE = "SResNet18 (T=4)"


def sweep_folder(name: str) -> Path:
    """``sweeps/<name>/`` beside the registry in use."""
    return registry.REGISTRY_PATH.resolve().parent / "sweeps" / check_part(name, "sweep name")


#: The measured panels: (x key of a curve summary, x key of a point record, axis label).
AXES = {"v1": ("smoothness", "v1_orientation_smoothness", "V1 orientation smoothness"),
        "it": ("it_smoothness", "it_category_smoothness", "IT category smoothness")}


def _errorbar(ax, summary: dict, x_key: str, **style) -> None:
    x, y = summary[x_key], summary["accuracy"]
    ax.errorbar([x["mean"]], [y["mean"]], xerr=[x["std"] or 0], yerr=[y["std"] or 0], capsize=3, **style)


def _has(summary: dict, key: str) -> bool:
    return (summary.get(key) or {}).get("mean") is not None


def _measured(ax, summary: dict[str, Any], axis: str) -> None:
    x_key, record_key, label = AXES[axis]
    colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4)
    for family, curve in summary["curves"].items():
        shown = sorted((c for c in curve if _has(c, x_key) and _has(c, "accuracy")), key=lambda c: c[x_key]["mean"])
        color = next(colors)
        ax.plot([c[x_key]["mean"] for c in shown], [c["accuracy"]["mean"] for c in shown], "-o", color=color,
                label=f"{family} ({', '.join(STRENGTH_SYMBOLS[n] for n in summary['families'][family])})")
        for c in shown:
            if c["accuracy"]["std"] is not None:
                _errorbar(ax, c, x_key, color=color, fmt="none")
            elif (sem := c[x_key].get("sem")) is not None:
                ax.errorbar([c[x_key]["mean"]], [c["accuracy"]["mean"]], xerr=[sem], fmt="none", color=color,
                            alpha=0.35, linewidth=1, capsize=2)
            ax.annotate(strength_text(c["strengths"]), (c[x_key]["mean"], c["accuracy"]["mean"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7, color=color)
    for family, base in summary["baselines"].items():
        color = next(colors)
        if not (_has(base, "accuracy") and _has(base, x_key)):
            continue
        seeds = [r for r in summary["points"] if r["family"] == family and r.get(record_key) is not None]
        ax.scatter([r[record_key] for r in seeds], [r["accuracy"] for r in seeds], color=color, alpha=0.35, s=14)
        _errorbar(ax, base, x_key, color=color, fmt="s", markersize=7,
                  label=f"{family} baseline (mean ± s.d., {base['accuracy']['n']} seeds)")
    level = summary["matched"]["level"]
    if level is not None and axis == "v1":
        ax.axvline(level, color="0.4", linestyle="--", linewidth=1, label=f"matched smoothness {level:.3f}")
    ax.set_title(f"measured ({summary['data']}, sweep {summary['sweep']}); bars: s.d. over seeds,\n"
                 "faint: SEM within one network", fontsize=10)
    ax.set_xlabel(label)


def _reported(ax) -> None:
    points = [(ab, s, paper_values.ACCURACY.get(ab)) for ab, s in paper_values.V1_SMOOTHNESS.items()]
    stated = [(ab, s, a) for ab, s, a in points if a is not None]
    ax.plot([s for _, s, _ in stated], [a for _, _, a in stated], "o", color="C3", label="TSResNet18")
    for (alpha, beta), s, a in stated:
        ax.annotate(f"α {alpha} β {beta}", (s, a), textcoords="offset points", xytext=(4, 4), fontsize=7)
    for (alpha, beta), s, _ in (p for p in points if p[2] is None):
        ax.axvline(s, color="C3", linestyle=":", linewidth=1, label=f"TSResNet18 α {alpha} β {beta}: smoothness "
                                                                    f"{s}, accuracy not stated")
    baseline = paper_values.BRAIN_SCORES[REPORTED_BASELINE]["accuracy"]
    ax.plot([paper_values.V1_SMOOTHNESS_BASELINE], [baseline], "s", color="0.3", markersize=7,
            label=REPORTED_BASELINE)
    ax.set_title("reported (ImageNet)", fontsize=10)


def draw(summary: dict[str, Any]):
    """The three-panel trade-off figure of a ``harness.tradeoff.summarize`` summary."""
    fig, (v1, it, reported) = plt.subplots(1, 3, figsize=(18, 5), gridspec_kw={"width_ratios": [3, 3, 2]})
    _measured(v1, summary, "v1")
    _measured(it, summary, "it")
    _reported(reported)
    reported.set_xlabel("V1 orientation smoothness")
    for ax in (v1, it, reported):
        ax.set_ylabel("top-1 accuracy (%)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            placement = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.14)} if ax is reported else {"loc": "best"}
            ax.legend(fontsize=7, **placement)  # below the reported panel, clear of its few points
    fig.tight_layout()
    return fig


def png(summary: dict[str, Any]) -> bytes:
    """``draw(summary)`` as PNG bytes (the same summary gives the same bytes)."""
    fig = draw(summary)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def report_figures(records: list[dict], folder: Path) -> list[Path]:
    """Copies into ``folder`` (``tradeoff-<sweep>.png``) of the trade-off figure of every
    sweep that a model of a harness run (``harness.score`` records) belongs to."""
    sweeps = dict.fromkeys(s for s in (registry.resolve(r["name"]).sweep for r in records) if s is not None)
    paths = []
    for name in sweeps:
        source = sweep_folder(name) / FIGURE
        if source.is_file():
            data = source.read_bytes()
            path = folder / f"tradeoff-{name}.png"
            atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
            paths.append(path)
    return paths
