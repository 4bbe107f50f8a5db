"""Tuning maps on the cortical sheet and their smoothness (docs/method.md §5, after TDANN).

Responses are ``rates [N_stim, U]`` (stimuli x units, e.g. from ``block_rates`` on the
sine gratings) with a ``metadata`` DataFrame of one row per stimulus; positions are
``[U, 2]`` in mm (``CorticalSheet.positions``). Arrays may be numpy or torch; results
are numpy.

Preference maps and their smoothness are reproducible bit for bit: tuning means are
order-free float64 sums (exact for spike rates, so ties are exact ties), ties at the
percentile cut are left out together, and unit samples are drawn from the units in a
canonical (position) order, so neither the stimulus order, the unit numbering nor the
machine's BLAS changes them.
Each smoothness comes with a spread: a bootstrap over units (``bootstrap_se`` of
``N_BOOT`` resampled curves) for the map, and the SEM over the shuffled samples for chance.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

#: TDANN's V1 analysis distance: half the diagonal of a (3.5 mm hypercolumn x 4/3) square.
V1_MAX_DIST_MM = math.sqrt(2 * (3.5 * 4 / 3) ** 2) / 2
#: Points of TDANN's interpolated orientation tuning curve (over 0-180 deg, both ends included).
VONMISES_POINTS = 50
#: Bootstrap replicates (unit resamples) behind the spread of a smoothness value or curve.
N_BOOT = 20
#: Relative distance within which a tuning peak-to-peak counts as equal to the percentile cut.
TIE_TOLERANCE = 1e-9
_FIT_CHUNK = 8192  # units per batched von Mises fit


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def tuning_curves(rates, metadata: pd.DataFrame, factor: str = "orientation") -> tuple[np.ndarray, np.ndarray]:
    """Mean response per level of the metadata column ``factor``, averaged over all other
    stimulus attributes. Returns the sorted levels ``[K]`` and curves ``[K, U]`` float64.

    Each level's mean is the float64 sum of its stimuli's responses, added in ascending
    order (not a BLAS product, whose rounding depends on the CPU and thread count), over
    their count: the same bits for any stimulus order and on any machine. Spike rates
    (multiples of 1/T) sum exactly, so levels with the same spike counts get identical
    means, a tie in the tuning curve is an exact tie and a flat curve is exactly flat."""
    r = _numpy(rates)
    if r.ndim != 2 or r.shape[0] != len(metadata):
        raise ValueError(f"rates {r.shape} do not match {len(metadata)} stimuli")
    codes, levels = pd.factorize(metadata[factor], sort=True)
    return np.asarray(levels), np.stack([np.sort(r[codes == k], axis=0).sum(0, dtype=np.float64)
                                         / np.count_nonzero(codes == k) for k in range(len(levels))])


def _argmax_preference(levels: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """Level [U] (its index for non-numeric levels) of each curve's maximum, the first
    (lowest) level where several tie; NaN for flat curves."""
    values = levels.astype(float) if np.issubdtype(levels.dtype, np.number) else np.arange(len(levels), dtype=float)
    pref = values[np.argmax(curves, axis=0)]
    pref[np.ptp(curves, axis=0) == 0] = np.nan
    return pref


def preferred(rates, metadata: pd.DataFrame, factor: str) -> np.ndarray:
    """[U] level of ``factor`` with the largest mean response (for non-numeric levels,
    e.g. colour, the index into the sorted levels: 'bw' = 0, 'rc' = 1); NaN where the
    tuning curve is flat."""
    return _argmax_preference(*tuning_curves(rates, metadata, factor))


def preferred_sf(rates, metadata: pd.DataFrame, column: str = "sf_cpd") -> np.ndarray:
    """[U] preferred spatial frequency (argmax of the mean response), in the units of ``column``."""
    return preferred(rates, metadata, column)


def preferred_color(rates, metadata: pd.DataFrame) -> np.ndarray:
    """[U] preferred colour condition (argmax of the mean response): 0 = black/white, 1 = red/cyan."""
    return preferred(rates, metadata, "color")


def _vonmises_fit(y: torch.Tensor, iterations: int = 200) -> torch.Tensor:
    """Least-squares fit of ``b exp(kappa (cos(x - mu) - 1))`` to curves y ``[U, M]`` on
    x = linspace(-pi, pi, M), by batched Levenberg-Marquardt; returns the fitted curves.

    This is TDANN's ``a exp(kappa cos(x - mu)) / (2 pi I0(kappa))`` reparametrised
    (b = a e^kappa / (2 pi I0(kappa))), which keeps exp from overflowing. mu starts at
    the curve's circular mean, kappa at 1, b at the curve's maximum.
    """
    m = y.shape[1]
    x = torch.linspace(-math.pi, math.pi, m, dtype=y.dtype)
    w = y[:, :-1] - y[:, :-1].amin(1, keepdim=True)  # the last point repeats the first
    mu = torch.atan2((w * torch.sin(x[:-1])).sum(1), (w * torch.cos(x[:-1])).sum(1))
    p = torch.stack([y.amax(1), mu, torch.ones_like(mu)], dim=1)  # [U, 3]: b, mu, kappa

    def model(p):
        c = torch.cos(x - p[:, 1:2]) - 1
        e = torch.exp(p[:, 2:3] * c)
        return p[:, :1] * e, e, c

    def sse(p):
        return (model(p)[0] - y).square().sum(1)

    loss, damping = sse(p), torch.full_like(mu, 1e-3)
    done = torch.zeros_like(mu, dtype=torch.bool)
    for _ in range(iterations):
        f, e, c = model(p)
        jac = torch.stack([e, f * p[:, 2:3] * torch.sin(x - p[:, 1:2]), f * c], dim=2)  # [U, M, 3]
        hess = jac.transpose(1, 2) @ jac
        diag = hess.diagonal(dim1=1, dim2=2)
        a = hess + torch.diag_embed(damping[:, None] * diag + 1e-12 * (1 + diag.amax(1, keepdim=True)))
        step = torch.linalg.solve_ex(a, -(jac.transpose(1, 2) @ (f - y)[..., None]), check_errors=False)[0]
        trial = p + step.squeeze(2)
        trial[:, 2].clamp_(-100.0, 100.0)
        trial_loss = sse(trial)
        better = trial_loss < loss  # False for a NaN step
        done |= (better & (loss - trial_loss <= 1e-10 * loss)) | (damping >= 1e6)
        p = torch.where(better[:, None], trial, p)
        loss = torch.where(better, trial_loss, loss)
        damping = torch.where(better, damping / 3, damping * 2).clamp(1e-9, 1e9)
        if bool(done.all()):
            break
    return model(p)[0]


def _orientation_preference(angles: np.ndarray, curves: np.ndarray, method: str) -> np.ndarray:
    """[U] preferred orientation (deg, [0, 180)) from orientation tuning curves [K, U]."""
    if method == "argmax":
        return np.mod(_argmax_preference(angles, curves), 180.0)
    if method != "vonmises":
        raise ValueError(f"method must be 'argmax' or 'vonmises', got {method!r}")
    # TDANN: extend the curve circularly to angles[0] + 180, interpolate linearly to 50
    # points, fit a von Mises and take the dense angle where the fit peaks.
    ext_angles = np.append(angles, angles[0] + 180.0)
    dense = np.linspace(ext_angles[0], ext_angles[-1], VONMISES_POINTS)
    ext = np.concatenate([curves, curves[:1]], axis=0).astype(np.float64)
    slot = np.clip(np.searchsorted(ext_angles, dense, side="right") - 1, 0, len(angles) - 1)
    frac = ((dense - ext_angles[slot]) / (ext_angles[slot + 1] - ext_angles[slot]))[:, None]
    interp = (ext[slot] * (1 - frac) + ext[slot + 1] * frac).T  # [U, 50]
    pref = np.full(curves.shape[1], np.nan)
    tuned = np.flatnonzero(np.ptp(curves, axis=0) > 0)
    chunks = range(0, len(tuned), _FIT_CHUNK)
    for s in tqdm(chunks, desc="von Mises fits", leave=False, disable=len(chunks) < 2):
        units = tuned[s:s + _FIT_CHUNK]
        y = torch.from_numpy(interp[units])
        scale = y.abs().amax(1, keepdim=True)
        fit = _vonmises_fit(y / scale)
        pref[units] = dense[fit.argmax(1).numpy()]
    return np.mod(pref, 180.0)


def preferred_orientation(rates, metadata: pd.DataFrame, method: str = "argmax") -> np.ndarray:
    """[U] preferred orientation in degrees, [0, 180), from the tuning curve averaged over
    SF, phase and colour: its argmax, or (``"vonmises"``) TDANN's von Mises fit to the
    curve circularly extended and interpolated to 50 points (resolution 180/49 deg).
    NaN where the tuning curve is flat."""
    angles, curves = tuning_curves(rates, metadata, "orientation")
    return _orientation_preference(angles, curves, method)


def circular_variance(curves, angles_deg) -> np.ndarray:
    """[U] orientation circular variance 1 - |sum_k R_k e^{2i theta_k}| / sum_k R_k of
    tuning curves ``[K, U]`` at angles ``[K]`` (deg): 0 for a single-angle response, 1 for
    a flat one; NaN for silent units."""
    r = _numpy(curves).astype(np.float64)
    phasor = np.exp(2j * np.deg2rad(_numpy(angles_deg).astype(np.float64)))
    total = r.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total != 0, 1 - np.abs(phasor @ r) / total, np.nan)


Seed = Union[int, Sequence[int]]
#: Pairwise quantity of a sample: (units [n], rows [P], cols [P]) -> values [P] of the pairs
#: (units[rows], units[cols]).
PairValues = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _distance_profile(pair_values: PairValues, positions, max_dist: float, n_bins: int, n_samples: int,
                      sample_size: int, shuffle: bool, seed: Seed, resample: bool = False
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample mean of a pairwise quantity per cortical-distance bin (TDANN's
    ``metric_difference_over_distance`` + ``agg_by_distance``).

    Each of n_samples draws min(sample_size, U) units, without replacement or, with
    ``resample``, with replacement (a bootstrap sample; pairs of a unit with itself are
    left out), from the units in canonical order (by position, x then y), so that the
    samples do not depend on how the units are numbered. Over its pairs, pair_values is
    averaged (NaN ignored) within n_bins equal bins [lo, hi) of [0, max_dist] mm. shuffle
    permutes the pairs' distances first (chance level). seed: an int or a sequence of
    ints (numpy ``SeedSequence`` entropy). Returns bin centres ``[n_bins]`` (mm) and
    curves ``[n_samples, n_bins]`` (NaN for an empty bin).
    """
    pos = _numpy(positions).astype(np.float64)
    rng = np.random.default_rng(seed)
    order = np.lexsort((pos[:, 1], pos[:, 0]))
    edges = np.linspace(0.0, max_dist, n_bins + 1)
    n = min(sample_size, len(pos))
    rows, cols = np.tril_indices(n, -1)
    same_every_sample = n == len(pos) and not (shuffle or resample)  # every sample holds all units
    curves = np.full((n_samples, n_bins), np.nan)
    for s in tqdm(range(n_samples), desc="distance profile", leave=False, disable=n_samples * n < 200_000):
        if s and same_every_sample:
            curves[s] = curves[0]
            continue
        idx = order[rng.choice(len(pos), size=n, replace=resample)]
        x, y = pos[idx, 0], pos[idx, 1]  # np.take: much faster than fancy indexing for these sizes
        dist = np.hypot(x.take(rows) - x.take(cols), y.take(rows) - y.take(cols))
        if shuffle:
            rng.shuffle(dist)
        values = pair_values(idx, rows, cols)
        bins = np.searchsorted(edges, dist, side="right") - 1
        dropped = ~np.isfinite(values)
        if resample:
            dropped |= idx.take(rows) == idx.take(cols)
        bins[dropped] = n_bins  # pairs beyond max_dist land there too; that bin is discarded
        counts = np.bincount(bins, minlength=n_bins + 1)[:n_bins]
        sums = np.bincount(bins, weights=np.where(dropped, 0.0, values), minlength=n_bins + 1)[:n_bins]
        with np.errstate(invalid="ignore"):
            curves[s] = np.where(counts > 0, sums / counts, np.nan)
    return (edges[:-1] + edges[1:]) / 2, curves


def preference_difference(a, b, circular_period: Optional[float] = None) -> np.ndarray:
    """|a - b|, elementwise; with a period P (180 for orientation) wrapped to [0, P/2]."""
    d = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    if circular_period is not None:
        d = np.mod(d, circular_period)
        d = np.minimum(d, circular_period - d)
    return d


def smoothness_curve(values, positions, circular_period: Optional[float] = None, max_dist: float = V1_MAX_DIST_MM,
                     n_bins: int = 9, n_samples: int = 20, sample_size: int = 1000, shuffle: bool = False,
                     seed: Seed = 0, resample: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Mean pairwise |delta value| against cortical distance (TDANN's difference over distance).

    values: ``[U]`` preferences (NaN ignored); positions: ``[U, 2]`` mm; circular_period:
    e.g. 180 for orientation (so the largest difference is 90). Pairs of each sample of
    ``sample_size`` units closer than max_dist fall into n_bins equal bins; ``resample``
    draws each sample with replacement (a bootstrap replicate, as ``smoothness_summary``
    does for the spread). Returns bin centres ``[n_bins]`` (mm) and one curve per sample
    ``[n_samples, n_bins]``; pass them to ``smoothness`` (TDANN averages the per-sample
    smoothness) or average them with ``np.nanmean(curves, 0)`` for a plot.
    """
    v = _numpy(values).astype(np.float64)

    def differences(idx: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        sample = v[idx]
        return preference_difference(sample.take(rows), sample.take(cols), circular_period)

    return _distance_profile(differences, positions, max_dist, n_bins, n_samples, sample_size, shuffle, seed, resample)


def _curve_smoothness(c: np.ndarray) -> float:
    nans = np.flatnonzero(np.isnan(c))
    if nans.size:
        c = c[:nans[0]]
    if c.size == 0:
        return math.nan
    if np.ptp(c) == 0:
        return 1.0
    return float((c.max() - c[0]) / c.max())


def smoothness_values(curves) -> np.ndarray:
    """``[n]`` TDANN smoothness of each difference-over-distance curve of ``[n, n_bins]``
    (see ``smoothness``)."""
    c = np.asarray(curves, dtype=np.float64)
    return np.array([_curve_smoothness(row) for row in c.reshape(-1, c.shape[-1])])


def smoothness(curve) -> float:
    """TDANN's smoothness (max(c) - c[0]) / max(c) of a difference-over-distance curve
    ``[n_bins]``, truncated at its first NaN; 1 for a flat curve, NaN for an empty one.
    For curves ``[n_samples, n_bins]``, the mean (NaN ignored) of the per-curve values."""
    c = np.asarray(curve, dtype=np.float64)
    if c.ndim == 1:
        return _curve_smoothness(c)
    values = smoothness_values(c)
    return float(values[~np.isnan(values)].mean()) if (~np.isnan(values)).any() else math.nan


def _nanmean(values, axis: Optional[int] = None) -> np.ndarray:
    """Mean over ``axis`` (all values by default), NaN ignored; NaN, without a warning, where all are NaN."""
    x = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nansum(x, axis=axis) / np.sum(~np.isnan(x), axis=axis)


def _nanstd(values, axis: int):
    """Sample standard deviation (ddof 1) over ``axis``, NaN ignored; NaN where fewer than
    two values. A float for 1-D ``values``."""
    x = np.asarray(values, dtype=np.float64)
    n = np.sum(~np.isnan(x), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.nansum((x - np.expand_dims(_nanmean(x, axis), axis)) ** 2, axis=axis) / (n - 1)
    out = np.where(n > 1, np.sqrt(var), np.nan)
    return float(out) if out.ndim == 0 else out


def sem(values, axis: int = 0):
    """Standard error of the mean over ``axis`` (NaN ignored): sample std (ddof 1) / sqrt(n);
    0 for identical values, NaN where fewer than two. A float for 1-D ``values``."""
    n = np.sum(~np.isnan(np.asarray(values, dtype=np.float64)), axis=axis)
    return _nanstd(values, axis) / np.sqrt(np.maximum(n, 1))


def bootstrap_se(replicates, axis: int = 0):
    """Bootstrap standard error: the sample std (ddof 1) of a statistic over its bootstrap
    replicates along ``axis``, NaN ignored; NaN where fewer than two. A float for 1-D input."""
    return _nanstd(replicates, axis)


def smoothness_summary(values, positions, circular_period: Optional[float] = None, n_samples: int = 20,
                       n_boot: int = N_BOOT, seed: int = 0, **curve_options) -> dict:
    """Smoothness of the map ``values [U]`` at ``positions [U, 2]`` mm, its chance level and
    their spread (``curve_options``: max_dist, n_bins, sample_size of ``smoothness_curve``).

    smoothness: mean over n_samples samples of the per-sample smoothness; chance: the
    same with shuffled distances. smoothness_sem: bootstrap standard error over units,
    from n_boot samples of ``sample_size`` units drawn with replacement (pairs of a unit
    with itself left out), each with its own seed. Where all units fit in one sample
    every sample holds the same units and this is the bootstrap SE of the value; with
    more units it is the spread of one sample's value, an upper bound on the error of the
    n_samples mean. chance_sem: SEM over the n_samples shuffled samples. n_boot = 0 skips
    the bootstrap (smoothness_sem and curve_sem NaN).

    Returns a dict: smoothness, smoothness_sem, chance, chance_sem (floats); bin_centers
    ``[n_bins]`` mm; curves, chance_curves ``[n_samples, n_bins]`` and bootstrap_curves
    ``[n_boot, n_bins]``; curve_sem (bootstrap SE per bin) and chance_curve_sem (SEM per
    bin) ``[n_bins]``.
    """
    if n_boot < 0 or n_samples < 1:
        raise ValueError(f"n_samples must be >= 1 and n_boot >= 0, got {n_samples} and {n_boot}")
    centers, curves = smoothness_curve(values, positions, circular_period, n_samples=n_samples, seed=seed,
                                       **curve_options)
    _, chance = smoothness_curve(values, positions, circular_period, n_samples=n_samples, shuffle=True, seed=seed,
                                 **curve_options)
    _, boot = smoothness_curve(values, positions, circular_period, n_samples=n_boot, resample=True,
                               seed=(seed, 1), **curve_options)
    return {"smoothness": smoothness(curves), "smoothness_sem": bootstrap_se(smoothness_values(boot)),
            "chance": smoothness(chance), "chance_sem": sem(smoothness_values(chance)), "bin_centers": centers,
            "curves": curves, "chance_curves": chance, "bootstrap_curves": boot, "curve_sem": bootstrap_se(boot),
            "chance_curve_sem": sem(chance)}


def most_tuned(curves, percentile: float = 75.0) -> np.ndarray:
    """``[U]`` bool: units whose tuning-curve peak-to-peak (curves ``[K, U]``) exceeds its
    ``percentile``-th percentile over units (TDANN's selection). A peak-to-peak within
    ``TIE_TOLERANCE`` (relative) of the cut ties with it and is left out, so units whose
    peak-to-peak equals the cut are all dropped, however their means rounded."""
    ptp = np.ptp(np.asarray(curves, dtype=np.float64), axis=0)
    cut = np.percentile(ptp, percentile)
    return ptp > cut + TIE_TOLERANCE * abs(cut)


def map_smoothness(rates, metadata: pd.DataFrame, positions, factor: str = "orientation", method: str = "argmax",
                   percentile: float = 75.0, seed: int = 0, **summary_options) -> dict:
    """Smoothness of the preference map of ``factor`` (TDANN's V1 analysis), with its spread.

    The ``most_tuned`` units (``factor`` tuning-curve peak-to-peak above its
    ``percentile``-th percentile) are kept; their preferences (orientation:
    ``preferred_orientation`` with ``method``, circular with period 180; other factors:
    argmax level, e.g. sf_cpd or colour index) go through ``smoothness_summary``
    (``summary_options``: n_samples, n_boot, max_dist, n_bins, sample_size).

    Returns ``smoothness_summary``'s dict plus mask [U] bool (kept units) and preferences [U].
    """
    levels, curves = tuning_curves(rates, metadata, factor)
    mask = most_tuned(curves, percentile)
    if factor == "orientation":
        prefs, period = _orientation_preference(levels, curves, method), 180.0
    else:
        prefs, period = _argmax_preference(levels, curves), None
    pos = _numpy(positions)
    if pos.shape != (curves.shape[1], 2):
        raise ValueError(f"positions {pos.shape} do not match {curves.shape[1]} units")
    summary = smoothness_summary(prefs[mask], pos[mask], period, seed=seed, **summary_options)
    return {**summary, "mask": mask, "preferences": prefs}


def orientation_smoothness(rates, metadata: pd.DataFrame, positions, **options) -> dict:
    """``map_smoothness`` of the orientation map (TDANN's V1 smoothness)."""
    return map_smoothness(rates, metadata, positions, "orientation", **options)


def correlation_vs_distance(rates, positions, n_bins: int = 10, max_dist: Optional[float] = None,
                            n_samples: int = 20, sample_size: int = 1000, seed: Seed = 0, resample: bool = False
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise Pearson correlation of unit responses ``rates [N_stim, U]`` against
    cortical distance (positions ``[U, 2]`` mm), in n_bins equal bins of [0, max_dist]
    (default: the diagonal of the positions' bounding box). Constant units are ignored;
    ``resample`` draws each sample with replacement (bootstrap replicates for
    ``bootstrap_se`` per bin). Returns bin centres ``[n_bins]`` (mm) and per-sample curves
    ``[n_samples, n_bins]``.
    """
    r = _numpy(rates)
    pos = _numpy(positions)
    if pos.shape != (r.shape[1], 2):
        raise ValueError(f"positions {pos.shape} do not match {r.shape[1]} units")
    if max_dist is None:
        max_dist = float(np.hypot(*np.ptp(pos, axis=0)))

    z = r.astype(np.float64)  # [N_stim, U], standardised in place: unit-norm columns, NaN for constant units
    z -= z.mean(0)
    norm = np.sqrt((z * z).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        z /= np.where(norm > 0, norm, np.nan)

    def correlations(idx: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        zi = z[:, idx]
        return (zi.T @ zi).ravel().take(rows * len(idx) + cols)

    return _distance_profile(correlations, pos, max_dist, n_bins, n_samples, sample_size, False, seed, resample)


def correlation_summary(rates, positions, n_boot: int = N_BOOT, seed: int = 0, **options) -> dict:
    """``correlation_vs_distance`` (``options``: n_bins, max_dist, n_samples, sample_size)
    with its spread. Returns bin_centers ``[n_bins]`` mm, curves ``[n_samples, n_bins]``,
    curve (their mean) and curve_sem ``[n_bins]``: the bootstrap SE per bin over n_boot
    samples drawn with replacement, as for ``smoothness_summary``."""
    centers, curves = correlation_vs_distance(rates, positions, seed=seed, **options)
    boot_options = {k: v for k, v in options.items() if k != "n_samples"}
    _, boot = correlation_vs_distance(rates, positions, n_samples=n_boot, seed=(seed, 1), resample=True,
                                      **boot_options)
    return {"bin_centers": centers, "curves": curves, "curve": _nanmean(curves, 0), "curve_sem": bootstrap_se(boot)}
