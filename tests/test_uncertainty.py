"""Spread of the topography numbers (bootstrap over units, SEM over samples) and the
order/tie invariance of the tuning analysis."""
import functools
import math

import numpy as np
import pytest
import torch
import yaml

from harness import report
from harness.score import load_subject
from harness.suites import Options, keys, topography
from tdsnn import registration
from tdsnn.analysis import (bootstrap_se, category_bootstrap, category_smoothness, correlation_summary,
                            map_smoothness, mean_category_smoothness, most_tuned, selectivity_maps, sem,
                            smoothness_summary, tuning_curves)
from tdsnn.stimuli import grating_metadata, sine_gratings

META = grating_metadata()
FAST = dict(n_samples=4, sample_size=400, n_boot=12)


def smooth_map(n: int, side: float = 12.0, seed: int = 0):
    """Positions [n, 2] mm and an orientation map turning 15 deg per mm along x."""
    pos = np.random.default_rng(seed).uniform(0, side, (n, 2))
    return pos, np.mod(15.0 * pos[:, 0], 180.0)


def spike_rates(units: int, seed: int = 0) -> np.ndarray:
    """Rates [640, units] of T = 4 spiking units (multiples of 1/4), orientation tuned with
    random preferences, so that tuning means tie often."""
    rng = np.random.default_rng(seed)
    pref = rng.choice(np.unique(META["orientation"]), units)
    theta = np.deg2rad(META["orientation"].to_numpy())[:, None]
    drive = np.cos(theta - np.deg2rad(pref)) ** 2 * rng.uniform(0.2, 1.0, units)
    return np.floor(4 * np.clip(drive + rng.uniform(-0.3, 0.3, (640, units)), 0, 1)) / 4


# --- the spread functions ----------------------------------------------------------------

def test_sem_and_bootstrap_se_have_known_values():
    assert sem([0.3, 0.3, 0.3, 0.3]) == pytest.approx(0.0, abs=1e-15)
    assert sem([1.0, 2.0, 3.0]) == pytest.approx(1 / math.sqrt(3))
    assert sem([1.0, np.nan, 3.0]) == pytest.approx(1.0)  # NaN ignored: std sqrt(2) over sqrt(2)
    assert math.isnan(sem([1.0])) and math.isnan(bootstrap_se([np.nan, 2.0]))
    assert bootstrap_se([1.0, 2.0, 3.0]) == pytest.approx(1.0)
    np.testing.assert_allclose(sem(np.array([[1.0, 5.0], [3.0, 5.0]])), [1.0, 0.0], atol=1e-15)


def test_smooth_map_is_far_above_chance_and_random_map_is_not():
    pos, pref = smooth_map(1500)
    smooth = smoothness_summary(pref, pos, 180.0, **FAST)
    spread = math.hypot(smooth["smoothness_sem"], smooth["chance_sem"])
    assert smooth["smoothness"] - smooth["chance"] > 10 * spread
    scrambled = smoothness_summary(np.random.default_rng(1).permutation(pref), pos, 180.0, **FAST)
    gap = abs(scrambled["smoothness"] - scrambled["chance"])
    assert gap < 3 * math.hypot(scrambled["smoothness_sem"], scrambled["chance_sem"])
    assert smooth["curve_sem"].shape == smooth["chance_curve_sem"].shape == (9,)
    assert np.all(smooth["curve_sem"][np.isfinite(smooth["curve_sem"])] >= 0)


def test_bootstrap_gives_the_spread_when_every_sample_holds_all_units():
    pos, pref = smooth_map(300)
    out = smoothness_summary(pref + np.random.default_rng(2).normal(0, 20, 300), pos, 180.0, n_samples=5,
                             sample_size=1000, n_boot=12)
    assert np.all(out["curves"] == out["curves"][0])  # 300 units < sample_size: the samples are identical
    assert out["smoothness_sem"] > 0.01  # ... so only the bootstrap over units shows the spread
    assert out["chance_sem"] > 0  # each shuffled sample differs


def test_bootstrap_is_seeded_and_reproducible():
    pos, pref = smooth_map(500)
    a, b = (smoothness_summary(pref, pos, 180.0, seed=3, **FAST) for _ in range(2))
    other = smoothness_summary(pref, pos, 180.0, seed=4, **FAST)
    assert a["smoothness_sem"] == b["smoothness_sem"] and a["chance_sem"] == b["chance_sem"]
    np.testing.assert_array_equal(a["bootstrap_curves"], b["bootstrap_curves"])
    assert a["smoothness_sem"] != other["smoothness_sem"]
    assert math.isnan(smoothness_summary(pref, pos, 180.0, n_samples=2, sample_size=100, n_boot=0)["smoothness_sem"])
    with pytest.raises(ValueError, match="n_boot"):
        smoothness_summary(pref, pos, 180.0, n_boot=-1)


def test_correlation_summary_has_a_spread_per_bin():
    pos, _ = smooth_map(200)
    rates = np.random.default_rng(0).random((40, 200))
    out = correlation_summary(rates, pos, n_bins=5, max_dist=10.0, n_samples=3, sample_size=150, n_boot=10)
    assert out["curve"].shape == out["curve_sem"].shape == (5,)
    assert np.all(out["curve_sem"] > 0)
    np.testing.assert_allclose(out["curve"], np.nanmean(out["curves"], 0))


def test_category_bootstrap_redraws_images_and_units():
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 70, (300, 2))
    labels = np.repeat(np.arange(3), 12)
    responses = rng.random((36, 300)) + (labels[:, None] == 0) * (pos[:, 0] / 70)  # category 0 map: smooth gradient
    names = ["a", "b", "c"]
    order, boot = category_bootstrap(responses, labels, names, pos, n_boot=8, sample_size=200)
    assert order == names and boot.shape == (8, 3)
    again = category_bootstrap(responses, labels, names, pos, n_boot=8, sample_size=200)[1]
    np.testing.assert_array_equal(boot, again)
    maps = selectivity_maps(responses, labels, names)
    per_map = [category_smoothness(maps[n], pos, n_samples=3, sample_size=200, n_boot=0) for n in names]
    summary = mean_category_smoothness(per_map, boot)
    assert summary["smoothness"] == pytest.approx(np.mean([m["smoothness"] for m in per_map]))
    assert summary["smoothness_sem"] == pytest.approx(bootstrap_se(boot.mean(1)))
    assert summary["smoothness_sem"] > 0 and summary["chance_sem"] > 0
    assert bootstrap_se(boot)[0] > 0  # the smooth map's own spread


# --- stability of the tuning analysis -----------------------------------------------------

def test_tuning_means_are_exact_and_independent_of_stimulus_order():
    rates = spike_rates(300)
    perm = np.random.default_rng(5).permutation(640)
    levels, curves = tuning_curves(rates, META)
    _, permuted = tuning_curves(rates[perm], META.iloc[perm].reset_index(drop=True))
    np.testing.assert_array_equal(curves, permuted)
    np.testing.assert_array_equal(curves * 320, np.round(curves * 320))  # 80 stimuli per level, rates k/4
    assert curves.dtype == np.float64


def test_ties_at_the_percentile_cut_are_dropped_together():
    """Curves with equal peak-to-peak but different baselines: their float means round
    differently, yet all of them tie with the cut."""
    base = np.arange(40) / 320
    small, tied, big = 5 / 320, 10 / 320, 20 / 320
    ptp = np.concatenate([np.full(60, small), np.full(30, tied), np.full(10, big)])
    curves = np.tile(base[np.arange(100) % 40], (8, 1))
    curves[3] += ptp
    assert len(set(np.ptp(curves, 0)[60:90])) > 1  # rounding makes the tied peak-to-peaks differ
    mask = most_tuned(curves, 75.0)
    np.testing.assert_array_equal(mask, np.arange(100) >= 90)


def test_preferences_and_smoothness_do_not_depend_on_stimulus_or_unit_order():
    rates = spike_rates(400, seed=1)
    pos = np.random.default_rng(6).uniform(0, 4, (400, 2))
    options = dict(n_samples=3, sample_size=80, n_boot=6)  # 100 kept units > 80: samples differ
    ref = map_smoothness(rates, META, pos, **options)
    stim = np.random.default_rng(7).permutation(640)
    by_stimuli = map_smoothness(rates[stim], META.iloc[stim].reset_index(drop=True), pos, **options)
    units = np.random.default_rng(8).permutation(400)
    by_units = map_smoothness(rates[:, units], META, pos[units], **options)
    for out, order in ((by_stimuli, np.arange(400)), (by_units, units)):
        np.testing.assert_array_equal(out["mask"], ref["mask"][order])
        np.testing.assert_array_equal(out["preferences"], ref["preferences"][order])
        for key in ("smoothness", "chance", "smoothness_sem", "chance_sem"):
            assert out[key] == ref[key], key


# --- the suite, the table and the model card ----------------------------------------------

def one_phase(size: int):
    """128 of the 640 gratings (phase 0): every orientation, SF and colour, a fifth of the work."""
    images, meta = sine_gratings(size)
    keep = (meta["phase"] == 0).to_numpy()
    return images[keep], meta[keep].reset_index(drop=True)


def test_topography_suite_records_spreads_and_the_table_shows_them(use_registry, monkeypatch):
    monkeypatch.setattr(topography, "sine_gratings", one_phase)
    small = dict(n_samples=3, sample_size=150, n_boot=4)  # the real analyses, on fewer and smaller samples
    monkeypatch.setattr(topography, "map_smoothness", functools.partial(topography.map_smoothness, **small))
    monkeypatch.setattr(topography, "correlation_summary", functools.partial(topography.correlation_summary, **small))
    monkeypatch.setattr(topography, "category_smoothness",
                        functools.partial(topography.category_smoothness, n_samples=3, sample_size=150))
    monkeypatch.setattr(topography, "category_bootstrap",
                        functools.partial(topography.category_bootstrap, n_boot=4, sample_size=150))
    result = topography.run(load_subject("tsresnet18.tiny", None, torch.device("cpu")),
                            Options(category_images=6, progress=False))
    smoothness_keys = [*keys.V1_SMOOTHNESS.values(), *keys.V1_SMOOTHNESS_CHANCE.values(),
                       keys.IT_CATEGORY_SMOOTHNESS, keys.IT_CATEGORY_SMOOTHNESS_CHANCE]
    assert set(smoothness_keys) <= set(result.sem)
    assert all(result.sem[k] >= 0 for k in smoothness_keys)
    for name in keys.V1_MAPS:
        assert len(result.arrays[keys.V1_CURVE_SEM[name]]) == len(result.arrays[keys.V1_CURVE[name]])
        assert len(result.arrays[keys.V1_CHANCE_CURVE_SEM[name]]) == len(result.arrays[keys.V1_CHANCE_CURVE[name]])
    assert len(result.arrays[keys.V1_CORRELATION_CURVE_SEM]) == len(result.arrays[keys.V1_CORRELATION_CURVE])
    assert result.details["spread"] == topography.SPREAD

    results = {"suites": ["topography"], "models": [{"name": "tsresnet18.tiny", "arch": "tsresnet18",
                                                     "data": "synthetic", "timesteps": 4,
                                                     "suites": {"topography": result}}]}
    titles, rows, _ = report.table_rows(results)
    table = report._markdown(titles, rows)
    smooth = result.cell(keys.V1_SMOOTHNESS["orientation"])
    assert f"{smooth.value:.3f} ± {smooth.sem:.3f}" in table
    assert report.spread_notes(results) == [topography.SPREAD]


def test_registration_records_the_spread_in_the_registry_and_the_card(tiny_run, registry_copy, monkeypatch):
    monkeypatch.setattr(registration, "sine_gratings", one_phase)
    assert registration.main([str(tiny_run), "--tag", "synth"]) == 0
    metrics = yaml.safe_load(registry_copy.read_text())["variants"]["resnet18.synth"]["metrics"]
    for key in ("v1_orientation_smoothness", "v1_orientation_smoothness_chance"):
        assert metrics[f"{key}_sem"] >= 0
    card = (registry_copy.parent / "weights" / "resnet18.synth.md").read_text()
    assert (f"**{metrics['v1_orientation_smoothness']:.3f} ± {metrics['v1_orientation_smoothness_sem']:.3f}**"
            in card)
    assert f"chance {metrics['v1_orientation_smoothness_chance']:.3f} ± " in card and "mean ± SEM" in card
