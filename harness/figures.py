"""Figures of a harness run (PNG, matplotlib), drawn from the suites' cached arrays.

Each function takes the model records of ``harness.score`` and returns the figure or
None when no model has the data it needs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)
import numpy as np  # noqa: E402

from tdsnn.checkpoint import atomic_write  # noqa: E402

MAX_CATEGORIES = 10  # t-map panels per model


def _with(records: list[dict], suite: str, key: str) -> list[tuple[str, dict]]:
    """(name, suite result) of the models whose ``suite`` result holds array or metric ``key``."""
    found = []
    for r in records:
        result = r.get("suites", {}).get(suite)
        if result and (key in result.get("arrays", {}) or key in result.get("metrics", {})):
            found.append((r["name"], result))
    return found


def _array(result: dict, key: str) -> np.ndarray:
    return np.array(result["arrays"][key], dtype=float)  # None (NaN in JSON) -> nan


def preference_maps(records: list[dict]):
    """V1 orientation (circular colormap), SF and colour preference of the most tuned units
    at their cortical positions, one row per model."""
    models = _with(records, "topography", "v1_orientation_preference")
    if not models:
        return None
    maps = (("orientation", "hsv", "preferred orientation (deg)", (0, 180)),
            ("sf", "viridis", "preferred SF (cycles/deg)", None),
            ("color", "coolwarm", "preferred colour (0 b/w, 1 red/cyan)", (0, 1)))
    fig, axes = plt.subplots(len(models), 3, figsize=(12, 3.6 * len(models)), squeeze=False)
    for row, (name, result) in enumerate(models):
        pos = _array(result, "v1_positions")
        for col, (factor, cmap, label, limits) in enumerate(maps):
            ax = axes[row, col]
            pref, mask = _array(result, f"v1_{factor}_preference"), _array(result, f"v1_{factor}_mask") > 0
            keep = mask & np.isfinite(pref)
            sc = ax.scatter(pos[keep, 0], pos[keep, 1], c=pref[keep], cmap=cmap, s=max(1.0, 4000 / max(1, keep.sum())),
                            vmin=limits[0] if limits else None, vmax=limits[1] if limits else None, linewidths=0)
            smooth = result["metrics"].get(f"v1_{factor}_smoothness")
            ax.set_title(f"{name}: {factor}" + (f" (smoothness {smooth:.2f})" if smooth is not None else ""), fontsize=9)
            ax.set_aspect("equal")
            ax.set_xlabel("mm")
            fig.colorbar(sc, ax=ax, label=label, shrink=0.8)
    fig.tight_layout()
    return fig


def _curves(records: list[dict], suite: str, bins: str, curve: str, chance: Optional[str], ylabel: str, title: str):
    models = _with(records, suite, curve)
    if not models:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, result) in enumerate(models):
        color = f"C{i}"
        ax.plot(_array(result, bins), _array(result, curve), "o-", color=color, label=name)
        if chance:
            ax.plot(_array(result, bins), _array(result, chance), ":", color=color)
    ax.set_xlabel("cortical distance (mm)")
    ax.set_ylabel(ylabel)
    ax.set_title(title + (" (dotted: shuffled distances)" if chance else ""), fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def smoothness_curves(records: list[dict]):
    """Mean |Δ preferred orientation| against cortical distance (TDANN's smoothness curve)."""
    return _curves(records, "topography", "v1_orientation_bins", "v1_orientation_curve", "v1_orientation_chance_curve",
                   "|Δ orientation| (deg)", "V1 orientation difference vs distance")


def correlation_distance(records: list[dict]):
    """Pairwise V1 response correlation against cortical distance."""
    return _curves(records, "topography", "v1_correlation_bins", "v1_correlation_curve", None,
                   "response correlation (Pearson r)", "V1 correlation vs distance (gratings)")


def _grouped_bars(records: list[dict], suite: str, keys: list[tuple[str, str]], ylabel: str, title: str,
                  chance: Optional[Callable[[str], str]] = None):
    models = [(r["name"], r["suites"][suite]) for r in records
              if suite in r.get("suites", {}) and any(k in r["suites"][suite]["metrics"] for k, _ in keys)]
    if not models:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(keys) * len(models) / 2), 4))
    width = 0.8 / len(models)
    x = np.arange(len(keys))
    for i, (name, result) in enumerate(models):
        values = [result["metrics"].get(k, np.nan) for k, _ in keys]
        values = [np.nan if v is None else v for v in values]
        ax.bar(x + i * width, values, width, label=name, color=f"C{i}")
        if chance:
            levels = [result["metrics"].get(chance(k), np.nan) for k, _ in keys]
            ax.scatter(x + i * width, [np.nan if v is None else v for v in levels], marker="_", s=200, color="k",
                       zorder=3, label="shuffled chance" if i == 0 else None)
    ax.set_xticks(x + width * (len(models) - 1) / 2, [label for _, label in keys])
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def smoothness_bars(records: list[dict]):
    keys = [("v1_orientation_smoothness", "V1 orientation"), ("v1_sf_smoothness", "V1 SF"),
            ("v1_color_smoothness", "V1 colour"), ("it_category_smoothness", "IT category")]
    return _grouped_bars(records, "topography", keys, "smoothness", "Map smoothness (TDANN)",
                         chance=lambda k: f"{k}_chance")


def robustness_bars(records: list[dict]):
    keys = [(k, k) for k in ("clean", "noise", "fgsm", "pgd", "mask")]
    return _grouped_bars(records, "robustness", keys, "top-1 (%)", "Accuracy under perturbation")


def brainscore_bars(records: list[dict]):
    keys = [(f"brainscore_{r}", r) for r in ("V1", "V2", "V4", "IT")]
    return _grouped_bars(records, "brainscore", keys, "Brain-Score (ceiled)", "Brain-Score per region")


def t_maps(records: list[dict]):
    """IT category-selectivity t-maps on the IT sheet, one row per model."""
    models = _with(records, "topography", "it_t_maps")
    if not models:
        return None
    n = min(MAX_CATEGORIES, max(len(_array(result, "it_t_maps")) for _, result in models))
    fig, axes = plt.subplots(len(models), n, figsize=(2.2 * n, 2.4 * len(models)), squeeze=False)
    for row, (name, result) in enumerate(models):
        maps, pos = _array(result, "it_t_maps"), _array(result, "it_positions")
        categories = result["details"]["categories"]
        limit = np.nanpercentile(np.abs(maps), 99) or 1.0
        for col in range(n):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(maps):
                ax.axis("off")
                continue
            ax.scatter(pos[:, 0], pos[:, 1], c=maps[col], cmap="RdBu_r", vmin=-limit, vmax=limit,
                       s=max(1.0, 3000 / len(pos)), linewidths=0)
            ax.set_title(f"{categories[col]}", fontsize=8)
            ax.set_aspect("equal")
        axes[row, 0].set_ylabel(name, fontsize=8)
    fig.suptitle("IT selectivity t-maps (red: prefers the category)", fontsize=10)
    fig.tight_layout()
    return fig


def entropy_curves(records: list[dict]):
    """Spike entropy (bits, mean over the region layers) against inference T."""
    models = _with(records, "temporal", "spike_entropy")
    if not models:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, result) in enumerate(models):
        by_region = result["details"]["entropy_by_timesteps"]
        steps = sorted({int(t) for e in by_region.values() for t in e})
        mean = [np.mean([e[str(t)] for e in by_region.values()]) for t in steps]
        ax.plot(steps, mean, "o-", color=f"C{i}", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("inference timesteps T")
    ax.set_ylabel("spike entropy (bits per neuron)")
    ax.set_title("Spike entropy of the region layers (sine gratings)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


FIGURES: dict[str, Callable] = {
    "preference_maps": preference_maps, "smoothness_curves": smoothness_curves, "smoothness": smoothness_bars,
    "correlation_distance": correlation_distance, "t_maps": t_maps, "robustness": robustness_bars,
    "entropy": entropy_curves, "brainscore": brainscore_bars,
}


def draw_all(records: list[dict], folder: Path) -> list[Path]:
    """Write every figure that has data to ``folder/<name>.png``; returns their paths."""
    paths = []
    for name, draw in FIGURES.items():
        fig = draw(records)
        if fig is None:
            continue
        path = folder / f"{name}.png"
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
        plt.close(fig)
        paths.append(path)
    return paths
