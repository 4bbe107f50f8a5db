"""IT category selectivity on the cortical sheet (docs/method.md §5, after TDANN's VTC analyses).

Responses are ``[N, U]`` (stimuli x units, e.g. ``block_rates`` of layer4.1 on the
category images of ``tdsnn.stimuli.category_images``) with integer labels ``[N]``
indexing the category names; positions are ``[U, 2]`` in mm
(``model_sheet(model, block).positions``). Arrays may be numpy or torch; results are numpy.

Selectivity of a unit for a category (or a domain, a group of categories) is Welch's
t between its responses to the "on" stimuli and to all other ("off") stimuli. One t per
unit makes a t-map; maps of different categories are compared by their Pearson
correlation over units (overlap), and each map's smoothness is TDANN's
(max - first) / max of the mean |delta t| against cortical distance, with the same
``smoothness_summary`` as the V1 orientation map. Its spread is a bootstrap over the
category images and the units (``category_bootstrap``): the t-maps rest on a few images
per category, and at small input sizes all units fit in one sample.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence, Union

import numpy as np

from .maps import (N_BOOT, _nanmean, _numpy, bootstrap_se, sem, smoothness, smoothness_curve, smoothness_summary,
                   smoothness_values)

#: Distance range (mm) of the category-smoothness curve: TDANN's IT/VTC ``distance_cutoff``
#: (notebooks F03-F05; bins ``linspace(0, 60, 10)``, i.e. 9 bins of 6.7 mm, as here). It
#: lies within the 70 mm IT sheet (``tdsnn.sheets.AREAS["IT"]``; diagonal 99 mm).
IT_MAX_DIST_MM = 60.0
#: Distance bins of the category-smoothness curve (TDANN: 9).
IT_BINS = 9
#: Units per sample and samples of the category-smoothness curve (TDANN's VTC notebooks: 500 and 25).
IT_SAMPLE_SIZE = 500
IT_SAMPLES = 25
#: t at or above which a unit counts as category selective (TDANN's "% category selective",
#: scripts/supplement/layer_selection.py; its patches also use 10). t grows with sqrt(n):
#: TDANN had 144 fLoc images per category.
SELECTIVE_T = 10.0
#: fLoc domains (VPNL fLoc category folders) as TDANN groups them; each domain's t-map
#: contrasts its two categories with the other eight (``FLOC_EXCLUDED`` images dropped).
FLOC_DOMAINS: dict[str, tuple[str, str]] = {
    "characters": ("number", "word"),
    "bodies": ("body", "limb"),
    "faces": ("adult", "child"),
    "objects": ("car", "instrument"),
    "places": ("corridor", "house"),
}
#: fLoc categories TDANN leaves out of every contrast.
FLOC_EXCLUDED: tuple[str, ...] = ("scrambled",)

Labels = Union[int, Sequence[int]]


def t_values(responses, labels, category: Labels, off: Optional[Sequence[int]] = None, ddof: int = 1,
             constant: float = 0.0) -> np.ndarray:
    """Welch t of each unit, ``[U]`` float64.

    t = (m_on - m_off) / sqrt(s_on²/n_on + s_off²/n_off), where "on" are the stimuli whose
    label is ``category`` (an int, or a sequence of ints for a domain) and "off" those
    with a label in ``off`` (default: every stimulus not on). s² is the variance with
    ``ddof`` (1: unbiased, as scipy's ``ttest_ind(equal_var=False)``; TDANN's ``tstat``
    uses 0). Units constant within both groups (zero denominator, e.g. silent units) get
    ``constant``: 0 by default as in TDANN, also when the two constants differ; pass NaN
    to leave them out of ``category_smoothness`` and ``overlap_correlations``.

    responses: ``[N, U]``; labels: ``[N]`` ints. Raises ValueError unless both groups
    hold at least 2 stimuli.
    """
    r = _numpy(responses)
    lab = _numpy(labels).reshape(-1)
    if r.ndim != 2 or r.shape[0] != len(lab):
        raise ValueError(f"responses {r.shape} do not match {len(lab)} labels")
    on = np.isin(lab, np.atleast_1d(category))
    off_mask = ~on if off is None else np.isin(lab, np.atleast_1d(off)) & ~on
    n_on, n_off = int(on.sum()), int(off_mask.sum())
    if min(n_on, n_off) < 2 or min(n_on, n_off) <= ddof:
        raise ValueError(f"category {category} needs at least 2 stimuli on and 2 off (and more than ddof={ddof}), "
                         f"got {n_on} and {n_off}")
    a, b = r[on].astype(np.float64), r[off_mask].astype(np.float64)
    # ptp, not the variance, decides constancy: the variance of a constant float column
    # can round to a tiny positive number and blow t up.
    flat = (np.ptp(a, 0) == 0) & (np.ptp(b, 0) == 0)
    se = np.sqrt(a.var(0, ddof=ddof) / n_on + b.var(0, ddof=ddof) / n_off)
    return np.where(flat, constant, (a.mean(0) - b.mean(0)) / np.where(flat, 1.0, se))


def floc_domains(names: Sequence[str]) -> Optional[dict[str, tuple[str, str]]]:
    """``FLOC_DOMAINS`` when ``names`` (category folder names) hold all ten fLoc domain
    categories, else None (then ``selectivity_maps`` makes one map per category)."""
    wanted = {c for pair in FLOC_DOMAINS.values() for c in pair}
    return dict(FLOC_DOMAINS) if wanted <= set(names) else None


def selectivity_maps(responses, labels, names: Sequence[str],
                     domains: Optional[Mapping[str, Sequence[str]]] = None,
                     exclude: Sequence[str] = (), **t_options) -> dict[str, np.ndarray]:
    """``{name: t-map [U]}``: responses ``[N, U]``, labels ``[N]`` indexing ``names``.

    Without ``domains``, one map per category of ``names`` (on = that category, off = all
    other stimuli). With ``domains`` (e.g. ``FLOC_DOMAINS`` or ``floc_domains(names)``),
    one map per domain: on = its categories, off = all other categories. Categories in
    ``exclude`` (TDANN: ``FLOC_EXCLUDED``) get no map and are in no off group.
    t_options: ``ddof``, ``constant`` of ``t_values``.
    """
    names = list(names)
    index = {name: k for k, name in enumerate(names)}
    unknown = [c for c in exclude if c not in index]
    if domains is not None:
        unknown += [c for cats in domains.values() for c in cats if c not in index]
    if unknown:
        raise ValueError(f"categories {unknown} are not among {names}")
    excluded = {index[c] for c in exclude}
    kept = [k for k in range(len(names)) if k not in excluded]
    if domains is None:
        groups = {names[k]: [k] for k in kept}
    else:
        groups = {domain: [index[c] for c in cats] for domain, cats in domains.items()}
        clash = [d for d, ks in groups.items() if excluded & set(ks)]
        if clash:
            raise ValueError(f"domains {clash} contain excluded categories {list(exclude)}")
    return {name: t_values(responses, labels, on, off=[k for k in kept if k not in on], **t_options)
            for name, on in groups.items()}


def overlap_correlations(maps: Mapping[str, np.ndarray], mask=None) -> tuple[list[str], np.ndarray]:
    """Map names (in ``maps`` order) and the ``[K, K]`` Pearson correlations between their
    t-maps over units (all maps ``[U]``). Units with a non-finite t in any map, or outside
    ``mask`` ``[U]`` bool, are left out; a constant map correlates NaN (its diagonal too)."""
    names = list(maps)
    t = np.stack([_numpy(maps[n]).astype(np.float64).reshape(-1) for n in names])
    keep = np.isfinite(t).all(0)
    if mask is not None:
        keep &= _numpy(mask).astype(bool).reshape(-1)
    z = t[:, keep] - t[:, keep].mean(1, keepdims=True)
    norm = np.sqrt((z * z).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        z /= np.where(norm > 0, norm, np.nan)[:, None]
    return names, np.clip(z @ z.T, -1.0, 1.0)


def selective_fraction(t_map, threshold: float = SELECTIVE_T, mask=None) -> float:
    """Fraction of units (within ``mask`` ``[U]`` bool, if given) with t >= ``threshold``
    (TDANN's criterion); NaN t count as not selective; NaN for no units."""
    t = _numpy(t_map).astype(np.float64).reshape(-1)
    if mask is not None:
        t = t[_numpy(mask).astype(bool).reshape(-1)]
    return float((t >= threshold).mean()) if t.size else float("nan")


def responsive_units(responses, min_mean: float = 0.0) -> np.ndarray:
    """``[U]`` bool: units whose mean response over stimuli ``[N, U]`` exceeds ``min_mean``.
    TDANN keeps IT units with mean ReLU activation > 0.5 for category smoothness; for
    spike rates (in [0, 1]) the default, > 0, drops only silent units."""
    return _numpy(responses).mean(0) > min_mean


def _analysed_units(t: np.ndarray, positions, mask) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``[U, 2]`` as numpy (checked against t ``[U]``) and the units ``[U]`` bool in
    ``mask`` (default all) with a finite t."""
    pos = _numpy(positions)
    if pos.shape != (len(t), 2):
        raise ValueError(f"positions {pos.shape} do not match {len(t)} units")
    keep = np.isfinite(t)
    if mask is not None:
        keep &= _numpy(mask).astype(bool).reshape(-1)
    return pos, keep


def category_smoothness(t_map, positions, max_dist: float = IT_MAX_DIST_MM, mask=None, seed: int = 0,
                        **summary_options) -> dict:
    """Smoothness of a category t-map ``[U]`` over unit positions ``[U, 2]`` (mm).

    Mean |delta t| of unit pairs against their cortical distance (``smoothness_summary``,
    no circular period, ``n_bins`` (default ``IT_BINS``) equal bins of [0, max_dist] mm,
    ``n_samples`` (``IT_SAMPLES``) samples of ``sample_size`` (``IT_SAMPLE_SIZE``) units),
    summarised by TDANN's mean per-sample (max - first) / max, once as is and once with
    shuffled distances (chance, near 0), with the bootstrap SE over units (``n_boot``)
    and the SEM of chance. Only units in ``mask`` ``[U]`` bool (e.g. ``responsive_units``;
    default all) with a finite t take part.

    Returns ``smoothness_summary``'s dict (curves: mean |delta t| per bin) plus mask ``[U]`` bool.
    """
    t = _numpy(t_map).astype(np.float64).reshape(-1)
    pos, keep = _analysed_units(t, positions, mask)
    options = {"n_bins": IT_BINS, "n_samples": IT_SAMPLES, "sample_size": IT_SAMPLE_SIZE, **summary_options}
    return {**smoothness_summary(t[keep], pos[keep], max_dist=max_dist, seed=seed, **options), "mask": keep}


def category_bootstrap(responses, labels, names: Sequence[str], positions, mask=None, n_boot: int = N_BOOT,
                       seed: int = 0, domains: Optional[Mapping[str, Sequence[str]]] = None,
                       exclude: Sequence[str] = (), max_dist: float = IT_MAX_DIST_MM, n_bins: int = IT_BINS,
                       sample_size: int = IT_SAMPLE_SIZE) -> tuple[list[str], np.ndarray]:
    """Bootstrap replicates of the category smoothness over images and units: the map
    names (``selectivity_maps`` order) and ``[n_boot, maps]``.

    Replicate b draws each category's images again with replacement (every category keeps
    its count), recomputes the t-maps (``selectivity_maps`` of responses ``[N, U]`` and
    labels ``[N]`` with ``domains``, ``exclude``) and records the smoothness of one sample
    of ``sample_size`` units drawn with replacement from the units in ``mask`` with a
    finite t, the same draw for every map with the same units. ``bootstrap_se`` of a
    column, or of the mean over maps, is that value's standard error.
    """
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")
    r, lab = _numpy(responses), _numpy(labels).reshape(-1)
    groups = [np.flatnonzero(lab == k) for k in np.unique(lab)]
    replicates, order = [], []
    for b in range(n_boot):
        rng = np.random.default_rng((seed, 2, b))
        idx = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        maps = selectivity_maps(r[idx], lab[idx], names, domains=domains, exclude=exclude)
        order = list(maps)
        row = []
        for t in maps.values():
            pos, keep = _analysed_units(t, positions, mask)
            _, curve = smoothness_curve(t[keep], pos[keep], max_dist=max_dist, n_bins=n_bins, n_samples=1,
                                        sample_size=sample_size, seed=(seed, 3, b), resample=True)
            row.append(smoothness(curve))
        replicates.append(row)
    return order, np.array(replicates, dtype=np.float64)


def mean_category_smoothness(per_map: Sequence[dict], replicates) -> dict:
    """The mean over maps of ``category_smoothness`` results ``per_map``, with its spread.

    Returns smoothness and chance (means over maps, NaN ignored); smoothness_sem: bootstrap
    SE of the mean over maps from ``category_bootstrap`` replicates ``[n_boot, maps]`` (in
    ``per_map`` order); chance_sem: SEM over samples of each sample's chance averaged over
    maps (with the shared seed, sample s of maps over the same units has the same units
    and shuffle).
    """
    chance_samples = np.stack([smoothness_values(m["chance_curves"]) for m in per_map])  # [maps, n_samples]
    return {"smoothness": float(_nanmean([m["smoothness"] for m in per_map])),
            "smoothness_sem": bootstrap_se(_nanmean(replicates, axis=1)),
            "chance": float(_nanmean([m["chance"] for m in per_map])), "chance_sem": sem(_nanmean(chance_samples, 0))}
