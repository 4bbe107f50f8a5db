"""Figures of a harness run (PNG, matplotlib), drawn from the suites' results and arrays.

Each function takes the model records of ``harness.score`` (suite name -> ``SuiteResult``)
and returns the figure or None when no model has the data it needs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from harness.suites import SuiteResult, keys  # noqa: E402
from tdsnn.analysis.robustness import PERTURBATION_LABELS  # noqa: E402
from tdsnn.checkpoint import atomic_write  # noqa: E402
from tdsnn.regions import REGIONS  # noqa: E402

MAX_CATEGORIES = 10  # t-map panels per model


def _with(records: list[dict], suite: str, key: str) -> list[tuple[str, SuiteResult]]:
    """(name, suite result) of the models whose ``suite`` result holds array or metric ``key``."""
    found = []
    for r in records:
        result = r.get("suites", {}).get(suite)
        if result is not None and (key in result.arrays or key in result.metrics):
            found.append((r["name"], result))
    return found


def _array(result: SuiteResult, key: str) -> np.ndarray:
    return np.array(result.arrays[key], dtype=float)  # None (NaN in JSON) -> nan


def _metric(result: SuiteResult, key: str) -> float:
    """Metric ``key`` of ``result`` (NaN where it has none)."""
    value = result.cell(key).value
    return np.nan if value is None else value


def _metric_sem(result: SuiteResult, key: str) -> float:
    """The standard error of metric ``key`` of ``result`` (NaN where none was measured)."""
    sem = result.cell(key).sem
    return np.nan if sem is None else sem


def _array_or_nan(result: SuiteResult, key: Optional[str], like: np.ndarray) -> np.ndarray:
    """Array ``key`` of ``result``, or NaN shaped ``like`` where there is none (no error bars)."""
    return _array(result, key) if key is not None and key in result.arrays else np.full(like.shape, np.nan)


def color_limit(values: np.ndarray, percentile: float = 99) -> float:
    """A symmetric colour range: the ``percentile`` of ``|values|`` ignoring NaN; 1 where
    that is not a positive number (all values NaN or zero)."""
    finite = np.abs(np.asarray(values, dtype=float))
    finite = finite[np.isfinite(finite)]
    limit = float(np.percentile(finite, percentile)) if finite.size else 0.0
    return limit if limit > 0 else 1.0


def preference_maps(records: list[dict]):
    """V1 orientation (circular colormap), SF and colour preference of the most tuned units
    at their cortical positions, one row per model."""
    models = _with(records, "topography", keys.V1_PREFERENCE["orientation"])
    if not models:
        return None
    maps = (("orientation", "hsv", "preferred orientation (deg)", (0, 180)),
            ("sf", "viridis", "preferred SF (cycles/deg)", None),
            ("color", "coolwarm", "preferred colour (0 b/w, 1 red/cyan)", (0, 1)))
    fig, axes = plt.subplots(len(models), 3, figsize=(12, 3.6 * len(models)), squeeze=False)
    for row, (name, result) in enumerate(models):
        pos = _array(result, keys.V1_POSITIONS)
        for col, (factor, cmap, label, limits) in enumerate(maps):
            ax = axes[row, col]
            pref, mask = _array(result, keys.V1_PREFERENCE[factor]), _array(result, keys.V1_MASK[factor]) > 0
            keep = mask & np.isfinite(pref)
            sc = ax.scatter(pos[keep, 0], pos[keep, 1], c=pref[keep], cmap=cmap, s=max(1.0, 4000 / max(1, keep.sum())),
                            vmin=limits[0] if limits else None, vmax=limits[1] if limits else None, linewidths=0)
            smooth = _metric(result, keys.V1_SMOOTHNESS[factor])
            note = f" (smoothness {smooth:.2f})" if np.isfinite(smooth) else ""
            ax.set_title(f"{name}: {factor}{note}", fontsize=9)
            ax.set_aspect("equal")
            ax.set_xlabel("mm")
            fig.colorbar(sc, ax=ax, label=label, shrink=0.8)
    fig.tight_layout()
    return fig


def _curves(records: list[dict], suite: str, bins: str, curve: str, chance: Optional[str], ylabel: str, title: str,
            curve_sem: Optional[str] = None, chance_sem: Optional[str] = None):
    """One curve per model against distance, with ± 1 SE error bars where ``curve_sem`` /
    ``chance_sem`` arrays exist."""
    models = _with(records, suite, curve)
    if not models:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, result) in enumerate(models):
        color, x, y = f"C{i}", _array(result, bins), _array(result, curve)
        ax.errorbar(x, y, yerr=_array_or_nan(result, curve_sem, y), fmt="o-", color=color, capsize=2, label=name)
        if chance:
            level = _array(result, chance)
            ax.errorbar(x, level, yerr=_array_or_nan(result, chance_sem, level), fmt=":", color=color, capsize=2)
    ax.set_xlabel("cortical distance (mm)")
    ax.set_ylabel(ylabel)
    ax.set_title(title + (" (dotted: shuffled distances)" if chance else "") + "; bars ± 1 SE", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def smoothness_curves(records: list[dict]):
    """Mean |Δ preferred orientation| against cortical distance (TDANN's smoothness curve)."""
    return _curves(records, "topography", keys.V1_BINS["orientation"], keys.V1_CURVE["orientation"],
                   keys.V1_CHANCE_CURVE["orientation"], "|Δ orientation| (deg)",
                   "V1 orientation difference vs distance", curve_sem=keys.V1_CURVE_SEM["orientation"],
                   chance_sem=keys.V1_CHANCE_CURVE_SEM["orientation"])


def correlation_distance(records: list[dict]):
    """Pairwise V1 response correlation against cortical distance."""
    return _curves(records, "topography", keys.V1_CORRELATION_BINS, keys.V1_CORRELATION_CURVE, None,
                   "response correlation (Pearson r)", "V1 correlation vs distance (gratings)",
                   curve_sem=keys.V1_CORRELATION_CURVE_SEM)


def _grouped_bars(records: list[dict], suite: str, bars: list[tuple[str, str]], ylabel: str, title: str,
                  chance: Optional[dict[str, str]] = None):
    """One group of bars per (metric key, label) of ``bars``, one bar per model, with ± 1 SE
    error bars where the suite measured one; ``chance``: metric key -> key of its chance
    level (drawn as a black tick, with its SE)."""
    models = [(r["name"], r["suites"][suite]) for r in records
              if suite in r.get("suites", {}) and any(k in r["suites"][suite].metrics for k, _ in bars)]
    if not models:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(bars) * len(models) / 2), 4))
    width = 0.8 / len(models)
    x = np.arange(len(bars))
    for i, (name, result) in enumerate(models):
        ax.bar(x + i * width, [_metric(result, k) for k, _ in bars], width, label=name, color=f"C{i}",
               yerr=[_metric_sem(result, k) for k, _ in bars], capsize=3)
        if chance:
            levels = [_metric(result, chance[k]) for k, _ in bars]
            ax.scatter(x + i * width, levels, marker="_", s=200, color="k", zorder=3,
                       label="shuffled chance" if i == 0 else None)
            ax.errorbar(x + i * width, levels, yerr=[_metric_sem(result, chance[k]) for k, _ in bars], fmt="none",
                        ecolor="k", capsize=2, zorder=3)
    ax.set_xticks(x + width * (len(models) - 1) / 2, [label for _, label in bars])
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


V1_MAP_LABELS = {"orientation": "V1 orientation", "sf": "V1 SF", "color": "V1 colour"}


def smoothness_bars(records: list[dict]):
    bars = [(keys.V1_SMOOTHNESS[m], V1_MAP_LABELS[m]) for m in keys.V1_MAPS]
    bars.append((keys.IT_CATEGORY_SMOOTHNESS, "IT category"))
    chance = {**{keys.V1_SMOOTHNESS[m]: keys.V1_SMOOTHNESS_CHANCE[m] for m in keys.V1_MAPS},
              keys.IT_CATEGORY_SMOOTHNESS: keys.IT_CATEGORY_SMOOTHNESS_CHANCE}
    return _grouped_bars(records, "topography", bars, "smoothness", "Map smoothness (TDANN), ± 1 SE", chance=chance)


def robustness_bars(records: list[dict]):
    bars = [(keys.ROBUST_ACCURACY[p], label) for p, label in PERTURBATION_LABELS.items()]
    return _grouped_bars(records, "robustness", bars, "top-1 (%)", "Accuracy under perturbation")


def brainscore_bars(records: list[dict]):
    bars = [(keys.BRAINSCORE[r], r) for r in REGIONS]
    return _grouped_bars(records, "brainscore", bars, "Brain-Score (ceiled)", "Brain-Score per region")


def t_maps(records: list[dict]):
    """IT category-selectivity t-maps on the IT sheet, one row per model."""
    models = _with(records, "topography", keys.IT_T_MAPS)
    if not models:
        return None
    n = min(MAX_CATEGORIES, max(len(_array(result, keys.IT_T_MAPS)) for _, result in models))
    fig, axes = plt.subplots(len(models), n, figsize=(2.2 * n, 2.4 * len(models)), squeeze=False)
    for row, (name, result) in enumerate(models):
        maps, pos = _array(result, keys.IT_T_MAPS), _array(result, keys.IT_POSITIONS)
        categories = result.details["categories"]
        limit = color_limit(maps)
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
    models = _with(records, "temporal", keys.SPIKE_ENTROPY)
    if not models:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, result) in enumerate(models):
        by_region = result.details["entropy_by_timesteps"]
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


def fisher_curves(records: list[dict]):
    """Fisher information I_t of the weights feeding each region against timestep t, one
    panel per spiking model."""
    models = [(r["name"], r["suites"]["temporal"]) for r in records
              if keys.FISHER_BY_STEP in getattr(r.get("suites", {}).get("temporal"), "details", {})]
    if not models:
        return None
    fig, axes = plt.subplots(1, len(models), figsize=(4.4 * len(models), 3.8), squeeze=False)
    for ax, (name, result) in zip(axes[0], models):
        curves = {region: np.array(curve, dtype=float) for region, curve in result.details[keys.FISHER_BY_STEP].items()}
        for i, (region, curve) in enumerate(curves.items()):
            ax.plot(np.arange(1, len(curve) + 1), curve, "o-", color=f"C{i}", label=f"→ {region}")
        if any((curve > 0).any() for curve in curves.values()):
            ax.set_yscale("log", nonpositive="mask")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("timestep t")
        ax.set_ylabel("I_t (mean squared gradient norm)")
        ax.set_title(f"{name} ({result.details['fisher_images']} images)", fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle("Fisher information over time per inter-area connection (log scale: zeros are not drawn)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def accuracy_timesteps(records: list[dict]):
    """Top-1 accuracy against inference T, one line per spiking model (its own T in the legend)."""
    models = [(name, result) for name, result in
              ((r["name"], r.get("suites", {}).get("temporal")) for r in records)
              if result is not None and any(k in result.metrics for k in keys.ACCURACY_AT_TIMESTEPS.values())]
    if not models:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, result) in enumerate(models):
        steps = [t for t, k in keys.ACCURACY_AT_TIMESTEPS.items() if k in result.metrics]
        ax.plot(steps, [_metric(result, keys.ACCURACY_AT_TIMESTEPS[t]) for t in steps], "o-", color=f"C{i}",
                label=f"{name} (trained at T = {result.details['native_timesteps']})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("inference timesteps T")
    ax.set_ylabel("top-1 (%)")
    ax.set_title("Accuracy against inference timesteps", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


FIGURES: dict[str, Callable] = {
    "preference_maps": preference_maps, "smoothness_curves": smoothness_curves, "smoothness": smoothness_bars,
    "correlation_distance": correlation_distance, "t_maps": t_maps, "robustness": robustness_bars,
    "entropy": entropy_curves, "fisher": fisher_curves, "accuracy_timesteps": accuracy_timesteps,
    "brainscore": brainscore_bars,
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
