"""IT category selectivity (tdsnn.analysis.selectivity) and the category-image loader."""
import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from tdsnn.analysis.selectivity import (FLOC_DOMAINS, IT_MAX_DIST_MM, category_smoothness, floc_domains,
                                        overlap_correlations, responsive_units, selective_fraction,
                                        selectivity_maps, t_values)
from tdsnn.data import DataError
from tdsnn.stimuli import category_images


def test_t_values_are_welch_t():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [10, 15, 20])
    responses = rng.standard_normal((45, 30))
    t = t_values(responses, labels, 1)
    on, off = responses[labels == 1], responses[labels != 1]
    np.testing.assert_allclose(t, stats.ttest_ind(on, off, equal_var=False).statistic, rtol=1e-10)
    # TDANN's tstat: population (ddof=0) standard deviations
    tdann = (on.mean(0) - off.mean(0)) / np.sqrt(on.var(0) / len(on) + off.var(0) / len(off))
    np.testing.assert_allclose(t_values(responses, labels, 1, ddof=0), tdann, rtol=1e-10)
    # torch input, a domain (two categories on) and an explicit off group
    np.testing.assert_allclose(t_values(torch.from_numpy(responses), torch.from_numpy(labels), 1), t)
    both = stats.ttest_ind(responses[labels <= 1], responses[labels == 2], equal_var=False).statistic
    np.testing.assert_allclose(t_values(responses, labels, [0, 1]), both, rtol=1e-10)
    only0 = stats.ttest_ind(on, responses[labels == 0], equal_var=False).statistic
    np.testing.assert_allclose(t_values(responses, labels, 1, off=[0]), only0, rtol=1e-10)


def test_planted_selective_unit_and_null_units():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 40)
    responses = rng.random((160, 400))
    responses[labels == 2, 0] += 0.8  # selective for category 2
    responses[labels == 2, 1] -= 0.8  # suppressed by category 2
    t = t_values(responses, labels, 2)
    assert t[0] > 10 and t[1] < -10  # expected ~15
    null = t[2:]
    assert abs(null.mean()) < 0.25 and 0.8 < null.std() < 1.2  # ~ standard t under the null
    assert np.mean(np.abs(null) > 3) < 0.02


def test_constant_units_get_the_documented_value():
    labels = np.repeat([0, 1], 6)
    responses = np.zeros((12, 4))
    responses[:, 1] = 0.1  # constant, whose float variance need not round to exactly 0
    responses[labels == 0, 2] = 1.0  # constant within each group, perfectly separated
    responses[:, 3] = np.arange(12.0)
    t = t_values(responses, labels, 0)
    assert t[:3].tolist() == [0.0, 0.0, 0.0] and t[3] < -5
    t_nan = t_values(responses, labels, 0, constant=np.nan)
    assert np.isnan(t_nan[:3]).all() and t_nan[3] == t[3]
    with pytest.raises(ValueError, match="at least 2 stimuli on"):
        t_values(responses[:7], labels[:7], 1)


def test_selectivity_maps_per_category_and_per_domain():
    rng = np.random.default_rng(2)
    names = sorted(c for pair in FLOC_DOMAINS.values() for c in pair) + ["scrambled"]
    assert names[-1] == "scrambled" and floc_domains(names) == FLOC_DOMAINS
    assert floc_domains(["faces", "places"]) is None
    labels = np.repeat(np.arange(len(names)), 8)
    responses = rng.standard_normal((len(labels), 50))
    per_category = selectivity_maps(responses, labels, names)
    assert list(per_category) == names
    np.testing.assert_array_equal(per_category["car"], t_values(responses, labels, names.index("car")))

    maps = selectivity_maps(responses, labels, names, domains=FLOC_DOMAINS, exclude=["scrambled"])
    assert list(maps) == list(FLOC_DOMAINS)
    face = np.isin(labels, [names.index("adult"), names.index("child")])
    other = ~face & (labels != names.index("scrambled"))
    expected = stats.ttest_ind(responses[face], responses[other], equal_var=False).statistic
    np.testing.assert_allclose(maps["faces"], expected, rtol=1e-10)
    assert "scrambled" not in selectivity_maps(responses, labels, names, exclude=["scrambled"])
    with pytest.raises(ValueError, match="not among"):
        selectivity_maps(responses, labels, names, domains={"tools": ["hammer"]})
    with pytest.raises(ValueError, match="excluded"):
        selectivity_maps(responses, labels, names, domains={"x": ["car", "scrambled"]}, exclude=["scrambled"])


def test_overlap_correlations():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(5000), rng.standard_normal(5000)
    names, corr = overlap_correlations({"x": a, "y": a.copy(), "neg": -2 * a + 1, "z": b})
    assert names == ["x", "y", "neg", "z"] and corr.shape == (4, 4)
    np.testing.assert_allclose(np.diag(corr), 1.0)
    assert corr[0, 1] == pytest.approx(1.0) and corr[0, 2] == pytest.approx(-1.0)
    assert abs(corr[0, 3]) < 0.05 and np.allclose(corr, corr.T)
    np.testing.assert_allclose(corr[0, 3], np.corrcoef(a, b)[0, 1])
    # a NaN unit is dropped from every pair; a constant map correlates NaN
    a_nan = a.copy()
    a_nan[0] = np.nan
    _, corr = overlap_correlations({"x": a_nan, "z": b, "flat": np.ones(5000)})
    np.testing.assert_allclose(corr[0, 1], np.corrcoef(a[1:], b[1:])[0, 1])
    assert np.isnan(corr[2]).all()
    _, masked = overlap_correlations({"x": a, "z": b}, mask=np.arange(5000) < 100)
    np.testing.assert_allclose(masked[0, 1], np.corrcoef(a[:100], b[:100])[0, 1])


def test_selective_fraction_and_responsive_units():
    t = np.zeros(100)
    t[:7] = 12.0
    t[7] = 10.0  # the threshold itself counts, as in TDANN
    t[8] = np.nan
    assert selective_fraction(t) == pytest.approx(0.08)
    assert selective_fraction(t, threshold=11) == pytest.approx(0.07)
    assert selective_fraction(t, mask=np.arange(100) < 10) == pytest.approx(0.8)
    rates = np.zeros((5, 4))
    rates[2, 1] = 0.2
    rates[:, 3] = 1.0
    assert responsive_units(rates).tolist() == [False, True, False, True]
    assert responsive_units(rates, min_mean=0.5).tolist() == [False, False, False, True]


def test_category_smoothness_separates_smooth_from_scrambled_maps():
    rng = np.random.default_rng(4)
    positions = rng.uniform(0, 70, (3000, 2))  # the 70 mm IT sheet
    smooth_map = np.sin(positions[:, 0] / 10) + np.cos(positions[:, 1] / 10)
    smooth = category_smoothness(smooth_map, positions, n_samples=5)
    scrambled = category_smoothness(rng.permutation(smooth_map), positions, n_samples=5)
    assert smooth["curves"].shape == smooth["chance_curves"].shape == (5, 9)
    np.testing.assert_allclose(smooth["bin_centers"], (np.arange(9) + 0.5) * IT_MAX_DIST_MM / 9)
    assert smooth["smoothness"] > 0.6 and abs(smooth["chance"]) < 0.2
    assert abs(scrambled["smoothness"] - scrambled["chance"]) < 0.2 and scrambled["smoothness"] < 0.25
    # |delta t| rises with distance for the smooth map and is flat for the scrambled one
    mean_curve = np.nanmean(smooth["curves"], 0)
    assert mean_curve[0] < 0.5 * mean_curve[4]


def test_category_smoothness_mask_and_nan_units():
    rng = np.random.default_rng(5)
    positions = rng.uniform(0, 70, (2000, 2))
    t = positions[:, 0] / 10.0
    silent = rng.random(2000) < 0.5
    noisy = t.copy()
    noisy[silent] = rng.normal(0, 5, silent.sum())  # units whose t is meaningless
    result = category_smoothness(noisy, positions, mask=~silent, n_samples=4)
    assert result["mask"].tolist() == (~silent).tolist()
    assert result["smoothness"] > 0.6
    assert category_smoothness(noisy, positions, n_samples=4)["smoothness"] < result["smoothness"] - 0.2
    nan_t = np.where(silent, np.nan, t)
    via_nan = category_smoothness(nan_t, positions, n_samples=4)
    assert via_nan["mask"].tolist() == (~silent).tolist()
    assert via_nan["smoothness"] == pytest.approx(result["smoothness"])
    with pytest.raises(ValueError, match="do not match"):
        category_smoothness(t[:10], positions)


def _save(array, path, mode=None):
    Image.fromarray(array, mode).save(path)


def test_category_images_reads_folders(tmp_path):
    rng = np.random.default_rng(6)
    for name in ("words", "faces"):
        (tmp_path / name).mkdir()
    for i in range(3):
        _save(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8), tmp_path / "faces" / f"{i}.PNG")
        _save(rng.integers(0, 255, (50, 30), dtype=np.uint8), tmp_path / "words" / f"{i}.jpeg", "L")
    wide = np.full((40, 60), 255, dtype=np.uint8)
    wide[:, :10] = wide[:, 50:] = 0  # black side bars that the centre crop removes
    _save(wide, tmp_path / "faces" / "z_wide.bmp", "L")
    (tmp_path / "faces" / "notes.txt").write_text("not an image")
    (tmp_path / "faces" / ".hidden.png").write_bytes(b"not a png")
    (tmp_path / ".cache").mkdir()
    images, labels, names = category_images(tmp_path, 24)
    assert isinstance(images, torch.Tensor) and images.dtype == torch.float32
    assert images.shape == (7, 3, 24, 24) and names == ["faces", "words"]
    assert labels.dtype == np.int64 and labels.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert 0 <= images.min() and images.max() <= 1 and images.std() > 0.1
    assert torch.equal(images[4, 0], images[4, 1]) and torch.equal(images[4, 0], images[4, 2])  # grey -> RGB
    assert torch.allclose(images[3], torch.ones(3, 24, 24), atol=1e-6)  # centre crop: no bars, no letterbox


def test_category_images_names_bad_input(tmp_path):
    with pytest.raises(DataError, match="is not a directory"):
        category_images(tmp_path / "missing", 24)
    with pytest.raises(DataError, match="at least 2 category sub-folders, found 0"):
        category_images(tmp_path, 24)
    for name in ("faces", "places"):
        (tmp_path / name).mkdir()
    _save(np.zeros((8, 8), np.uint8), tmp_path / "faces" / "0.png", "L")
    (tmp_path / "places" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"places holds no .png/.jpg/.jpeg/.bmp files"):
        category_images(tmp_path, 24)
    (tmp_path / "places" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="cannot read .*broken.jpg"):
        category_images(tmp_path, 24)
