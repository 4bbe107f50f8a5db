"""IT category selectivity on the cortical sheet (METHOD.md §5, after TDANN's VTC analyses).

Responses are ``[N, U]`` (stimuli x units, e.g. ``block_rates`` of layer4.1 on category
images) with integer labels ``[N]`` indexing the category names; positions ``[U, 2]`` mm.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .maps import _numpy, smoothness, smoothness_curve

#: Distance range of the category smoothness curve: half the side of the 70 mm IT sheet.
IT_MAX_DIST_MM = 35.0
#: t above which a unit counts as selective for a category (TDANN's threshold).
SELECTIVE_T = 2.0


def t_values(responses, labels, category: int) -> np.ndarray:
    """[U] Welch t of each unit, on = stimuli of ``category``, off = all others:
    (m_on - m_off) / sqrt(s_on²/n_on + s_off²/n_off), with unbiased variances. Units that
    are constant within both groups have no t; they get 0."""
    r = _numpy(responses).astype(np.float64)
    on = np.asarray(labels) == category
    if on.sum() < 2 or (~on).sum() < 2:
        raise ValueError(f"category {category} needs at least 2 stimuli on and 2 off, got {on.sum()} and {(~on).sum()}")
    a, b = r[on], r[~on]
    flat = (np.ptp(a, 0) == 0) & (np.ptp(b, 0) == 0)
    se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
    return np.where(flat, 0.0, (a.mean(0) - b.mean(0)) / np.where(flat, 1.0, se))


def selectivity_maps(responses, labels, names: Sequence[str]) -> dict[str, np.ndarray]:
    """``{name: t-map [U]}``, one per category; ``labels`` index ``names``."""
    return {name: t_values(responses, labels, k) for k, name in enumerate(names)}


def overlap_correlations(maps: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Category names and the ``[K, K]`` Pearson correlations between their t-maps."""
    names = list(maps)
    return names, np.corrcoef(np.stack([np.asarray(maps[n], dtype=np.float64) for n in names]))


def selective_fraction(t_map, threshold: float = SELECTIVE_T) -> float:
    """Fraction of units with t above ``threshold``."""
    return float((np.asarray(t_map) > threshold).mean())


def category_smoothness(t_map, positions, max_dist: float = IT_MAX_DIST_MM, seed: int = 0, **curve_options) -> dict:
    """Smoothness of a t-map: mean |Δt| against cortical distance (``smoothness_curve``,
    no circular period, up to ``max_dist`` mm) and TDANN's (max - first) / max, once as is
    and once with shuffled distances (chance). Returns smoothness, chance, bin_centers,
    curves and chance_curves, as ``map_smoothness``."""
    centers, curves = smoothness_curve(t_map, positions, max_dist=max_dist, seed=seed, **curve_options)
    _, chance = smoothness_curve(t_map, positions, max_dist=max_dist, shuffle=True, seed=seed, **curve_options)
    return {"smoothness": smoothness(curves), "chance": smoothness(chance), "bin_centers": centers,
            "curves": curves, "chance_curves": chance}
