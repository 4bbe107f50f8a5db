import math

import numpy as np
import pytest
import torch
from scipy.optimize import curve_fit
from scipy.special import i0

import tdsnn
from tdsnn.analysis import (block_rates, block_spikes, circular_variance, correlation_vs_distance,
                            effective_dimensionality, map_smoothness, orientation_smoothness,
                            preference_difference, preferred_color, preferred_orientation, preferred_sf,
                            smoothness, smoothness_curve, spike_entropy, tuning_curves)
from tdsnn.data import Preprocessing
from tdsnn.stimuli import ORIENTATIONS_DEG, SF_CYCLES_PER_IMAGE, grating_metadata

from tiny import TINY

META = grating_metadata()
THETA = np.deg2rad(META["orientation"].to_numpy())[:, None]  # [640, 1]


def oriented_units(pref_deg: np.ndarray, sharpness: float = 1.0) -> np.ndarray:
    """Rates [640, U] of units responding cos^2(theta - theta_k) ** sharpness, plus an SF and
    colour dependence that must average out."""
    sf = META["sf_cpi"].to_numpy()[:, None] / 110
    colour = (META["color"] == "rc").to_numpy()[:, None]
    return (np.cos(THETA - np.deg2rad(pref_deg)) ** 2) ** sharpness * (1 + sf) * (1 + 0.5 * colour)


def smooth_map(n: int = 3000, side: float = 12.0, seed: int = 0):
    """Positions [n, 2] mm and an orientation map that turns 15 deg per mm along x."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, side, (n, 2))
    return pos, np.mod(15.0 * pos[:, 0], 180.0)


# --- tuning and preferences -------------------------------------------------------------

def test_tuning_curves_average_over_other_factors():
    rates = oriented_units(np.array([0.0, 45.0]))
    angles, curves = tuning_curves(rates, META, "orientation")
    np.testing.assert_allclose(angles, ORIENTATIONS_DEG)
    assert curves.shape == (8, 2)
    mask = META["orientation"] == 45.0
    np.testing.assert_allclose(curves[2], rates[mask.to_numpy()].mean(0), rtol=1e-6)
    sfs, sf_curves = tuning_curves(rates, META, "sf_cpi")
    np.testing.assert_allclose(sfs, SF_CYCLES_PER_IMAGE)
    assert np.all(np.diff(sf_curves[:, 0]) > 0)  # response grows with sf by construction


@pytest.mark.parametrize("method", ["argmax", "vonmises"])
def test_preferred_orientation_recovers_filters(method):
    truth = np.array([0.0, 10.0, 22.5, 50.0, 90.0, 120.0, 157.5, 170.0])
    pref = preferred_orientation(oriented_units(truth, sharpness=2.0), META, method)
    assert pref.shape == truth.shape and np.all((pref >= 0) & (pref < 180))
    err = preference_difference(pref, truth, 180)
    assert err.max() <= 22.5 / 2 + 1e-9  # within half a grid step of the truth
    on_grid = np.isin(truth, ORIENTATIONS_DEG)
    if method == "argmax":
        np.testing.assert_allclose(pref[on_grid], truth[on_grid])
    else:
        assert err[on_grid].max() <= 180 / 49  # one step of the 50-point interpolation


def test_vonmises_matches_scipy_curve_fit():
    """Our batched fit finds the same peak as TDANN's scipy fit on the same 50-point curves."""
    rng = np.random.default_rng(3)
    u = 40
    rates = oriented_units(rng.uniform(0, 180, u), sharpness=rng.uniform(0.3, 3, u)) + rng.uniform(0, 1, u)
    rates = rates + 0.2 * rng.random(rates.shape)
    angles, curves = tuning_curves(rates, META)
    dense = np.linspace(0, 180, 50)
    x = np.linspace(-np.pi, np.pi, 50)

    def vonmises(x, a, x0, kappa):
        return a * np.exp(kappa * np.cos(x - x0)) / (2 * np.pi * i0(kappa))

    ref = []
    for k in range(u):
        tc = np.interp(dense, np.append(angles, 180.0), np.append(curves[:, k], curves[0, k]))
        params, _ = curve_fit(vonmises, x, tc, maxfev=100_000)
        ref.append(np.mod(dense[np.argmax(vonmises(x, *params))], 180))
    ours = preferred_orientation(rates, META, "vonmises")
    assert np.mean(preference_difference(ours, ref, 180) < 1e-6) >= 0.95


def test_flat_units_have_no_preference():
    rates = np.ones((640, 2))
    rates[:, 1] = oriented_units(np.array([45.0]))[:, 0]
    for method in ("argmax", "vonmises"):
        pref = preferred_orientation(rates, META, method)
        assert np.isnan(pref[0]) and pref[1] == pytest.approx(45.0, abs=180 / 49)


def test_preferred_sf_and_color():
    sf = META["sf_cpd"].to_numpy()[:, None]
    rc = (META["color"] == "rc").to_numpy()[:, None]
    rates = np.concatenate([np.exp(-(sf - 6.0) ** 2), np.where(rc, 2.0, 1.0), np.where(rc, 1.0, 2.0)], axis=1)
    assert preferred_sf(rates, META)[0] == pytest.approx(SF_CYCLES_PER_IMAGE[3] / 8)  # 5.59 cpd is closest to 6
    np.testing.assert_array_equal(preferred_color(rates, META)[1:], [1.0, 0.0])


def test_circular_variance():
    angles = ORIENTATIONS_DEG
    curves = np.stack([np.eye(8)[3], np.ones(8), np.zeros(8), [1, 0, 0, 0, 1, 0, 0, 0]], axis=1)
    cv = circular_variance(curves, angles)
    np.testing.assert_allclose(cv[:2], [0.0, 1.0], atol=1e-12)
    assert np.isnan(cv[2])
    assert cv[3] == pytest.approx(1.0)  # opposite phasors (0 and 90 deg) cancel


# --- smoothness -------------------------------------------------------------------------

def test_orientation_difference_wraps_at_90():
    assert preference_difference(170.0, 10.0, 180) == pytest.approx(20.0)
    assert preference_difference(0.0, 90.0, 180) == pytest.approx(90.0)
    assert preference_difference(170.0, 10.0) == pytest.approx(160.0)


def test_smoothness_summary():
    assert smoothness([0.5, 1.0, 2.0]) == pytest.approx(0.75)
    assert smoothness([1.0, 1.0, 1.0]) == 1.0  # flat: TDANN scores 1
    assert smoothness([1.0, 4.0, np.nan, 100.0]) == pytest.approx(0.75)  # truncated at the NaN
    assert math.isnan(smoothness([np.nan, 1.0]))
    assert smoothness([[0.5, 1.0], [1.0, 1.0], [np.nan, 2.0]]) == pytest.approx(0.75)  # mean over curves


def test_smoothness_curve_bins_pairs():
    pos = np.array([[0.0, 0.0], [0.5, 0.0], [2.5, 0.0]])
    centers, curves = smoothness_curve(np.array([10.0, 20.0, 170.0]), pos, circular_period=180, max_dist=3.0,
                                       n_bins=3, n_samples=2)
    np.testing.assert_allclose(centers, [0.5, 1.5, 2.5])
    # pairs: (0,1) d=0.5 diff 10; (0,2) d=2.5 diff 20; (1,2) d=2.0 diff 30
    np.testing.assert_allclose(curves, [[10.0, np.nan, 25.0]] * 2)


def test_smooth_map_is_smooth_and_random_map_is_not():
    pos, pref = smooth_map()
    opts = dict(n_samples=5, sample_size=1000)
    _, curves = smoothness_curve(pref, pos, 180, **opts)
    _, chance = smoothness_curve(pref, pos, 180, shuffle=True, **opts)
    assert np.all(np.diff(np.nanmean(curves, 0)) > 0)
    assert smoothness(curves) > 0.8
    assert smoothness(chance) < 0.2
    random_pref = np.random.default_rng(1).uniform(0, 180, len(pref))
    _, random_curves = smoothness_curve(random_pref, pos, 180, **opts)
    assert smoothness(random_curves) < 0.2
    assert np.nanmean(random_curves) == pytest.approx(45.0, abs=3.0)  # mean wrapped |delta| of uniform prefs


def test_orientation_smoothness_end_to_end():
    pos, pref = smooth_map(n=2000)
    rng = np.random.default_rng(2)
    gain = rng.uniform(0.1, 1.0, len(pref))
    rates = oriented_units(pref) * gain
    out = orientation_smoothness(rates, META, pos, n_samples=4, sample_size=500)
    assert out["mask"].mean() == pytest.approx(0.25, abs=0.01)
    assert np.all(gain[out["mask"]] > np.percentile(gain, 70))  # kept units are the most tuned
    assert out["smoothness"] > 0.6 and out["chance"] < 0.2
    assert out["curves"].shape == out["chance_curves"].shape == (4, 9)
    assert preference_difference(out["preferences"], pref, 180).max() <= 11.25 + 1e-9


def test_sf_map_smoothness():
    pos, _ = smooth_map(n=2000)
    sf_index = np.minimum((pos[:, 1] / 12.0 * 8).astype(int), 7)  # SF preference changes along y
    level = np.searchsorted(SF_CYCLES_PER_IMAGE, META["sf_cpi"].to_numpy())[:, None]
    rates = np.exp(-((level - sf_index) ** 2)) * np.random.default_rng(4).uniform(0.1, 1.0, len(pos))
    out = map_smoothness(rates, META, pos, factor="sf_cpd", n_samples=3, sample_size=500)
    np.testing.assert_allclose(out["preferences"], SF_CYCLES_PER_IMAGE[sf_index] / 8)
    assert out["smoothness"] > 0.6 and out["chance"] < 0.2


# --- correlation vs distance --------------------------------------------------------------

def test_correlation_decreases_with_distance():
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 10, (600, 2))
    # responses = a spatially smooth random field over stimuli: nearby units share inputs
    centers = rng.uniform(0, 10, (40, 2))
    weights = np.exp(-((pos[:, None] - centers[None]) ** 2).sum(-1) / 2.0)  # [U, 40]
    rates = rng.normal(size=(200, 40)) @ weights.T + 0.3 * rng.normal(size=(200, 600))
    rates[:, 0] = 1.0  # a constant unit must not poison the curves
    bins, curves = correlation_vs_distance(rates, pos, n_bins=6, max_dist=6.0, n_samples=3, sample_size=400)
    mean = np.nanmean(curves, 0)
    assert bins.shape == (6,) and curves.shape == (3, 6) and np.isfinite(curves).all()
    assert np.all(np.diff(mean) < 0) and mean[0] > 0.5 and mean[-1] < mean[0] - 0.3


# --- entropy and dimensionality -----------------------------------------------------------

def test_spike_entropy():
    assert spike_entropy(torch.zeros(5, 4, 7)) == 0.0
    assert spike_entropy(torch.ones(5, 4, 7)) == 0.0
    half = torch.zeros(2, 4, 3)
    half[:, ::2] = 1  # p = 0.5 for every neuron
    assert spike_entropy(half) == pytest.approx(1.0)
    mixed = torch.cat([half, torch.zeros(2, 4, 1)], dim=2)  # three 1-bit neurons, one silent
    assert spike_entropy(mixed.to(torch.uint8)) == pytest.approx(0.75)
    quarter = torch.zeros(1, 4, 1)
    quarter[0, 0] = 1
    h = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert spike_entropy(quarter.numpy()) == pytest.approx(h)


def test_effective_dimensionality():
    rng = np.random.default_rng(0)
    iso = rng.normal(size=(4000, 10))
    assert effective_dimensionality(iso) == pytest.approx(10.0, rel=0.03)
    rank1 = rng.normal(size=(50, 1)) @ rng.normal(size=(1, 300)) + 5.0  # U >> N: Gram path
    assert effective_dimensionality(torch.tensor(rank1)) == pytest.approx(1.0, abs=1e-6)
    for shape in ((30, 200), (200, 30)):  # Gram (U > N) and scatter paths against numpy
        x = rng.normal(size=shape) * rng.uniform(0.1, 3.0, shape[1])
        eig = np.linalg.eigvalsh(np.cov(x, rowvar=False))
        assert effective_dimensionality(x) == pytest.approx(eig.sum() ** 2 / (eig ** 2).sum(), rel=1e-9)
    assert math.isnan(effective_dimensionality(np.ones((5, 3))))


# --- block responses on tiny models --------------------------------------------------------

SMALL = {**TINY, "input_size": 8}  # block outputs 8x8 (layer1) ... 1x1 (layer4)
PRE = Preprocessing(8, (0.5,) * 3, (0.25,) * 3)


@pytest.fixture(scope="module")
def gratings():
    from tdsnn.stimuli import sine_gratings
    images, _ = sine_gratings(6)
    return images[::107]  # 6 gratings at 6 px, resized to the model's 8 px


def calibrate_batchnorm(model, images):
    """Set BN running statistics to those of the images, so that an untrained model spikes in eval mode."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one batch sets the statistics
    with torch.no_grad():
        model.train()(PRE.normalize()(images))


def test_block_rates_spiking(gratings):
    model = tdsnn.create_model("sresnet18", **SMALL)
    calibrate_batchnorm(model, torch.nn.functional.interpolate(gratings, size=8, mode="bilinear"))
    blocks = ["layer1.0", "layer2.0"]
    rates = block_rates(model, gratings, PRE, blocks, batch_size=4, progress=False)
    assert list(rates) == blocks and model.training  # the training flag is restored
    assert rates["layer1.0"].shape == (6, 16 * 8 * 8) and rates["layer2.0"].shape == (6, 32 * 4 * 4)
    t = model.timesteps
    for r in rates.values():
        assert r.dtype == torch.float32 and r.min() >= 0 and r.max() <= 1 and r.max() > 0
        torch.testing.assert_close(r * t, (r * t).round())  # spike counts / T
    one = block_rates(model, gratings, ((0.5,) * 3, (0.25,) * 3), blocks, batch_size=1, progress=False)
    for block in blocks:
        torch.testing.assert_close(one[block], rates[block])
    spikes = block_spikes(model, gratings, PRE, ["layer2.0"], batch_size=5, progress=False)["layer2.0"]
    assert spikes.shape == (6, t, 32 * 4 * 4) and spikes.dtype == torch.uint8
    torch.testing.assert_close(spikes.float().mean(1), rates["layer2.0"])


def test_block_rates_ann(gratings):
    model = tdsnn.create_model("resnet18", **SMALL)
    rates = block_rates(model, gratings, PRE, ["layer3.1"], batch_size=4, progress=False)["layer3.1"]
    assert rates.shape == (6, 64 * 2 * 2) and rates.min() >= 0 and rates.max() > 0
    one = block_rates(model, gratings, PRE, ["layer3.1"], batch_size=1, progress=False)["layer3.1"]
    torch.testing.assert_close(one, rates, rtol=1e-5, atol=1e-5)
    spikes = block_spikes(model, gratings, PRE, ["layer3.1"], progress=False)["layer3.1"]
    assert spikes.shape == (6, 1, 64 * 2 * 2) and spikes.dtype == torch.float32
    with pytest.raises(ValueError, match="preprocessing size"):
        block_rates(model, gratings, Preprocessing(32), ["layer3.1"], progress=False)
    with pytest.raises(ValueError, match="unknown blocks"):
        block_rates(model, gratings, PRE, ["layer5.0"], progress=False)
