"""IT category selectivity (tdsnn.analysis.selectivity) and the category-image loader."""
import numpy as np
import pytest
from PIL import Image
from scipy import stats

from tdsnn.analysis.selectivity import (category_smoothness, overlap_correlations, selective_fraction,
                                        selectivity_maps, t_values)
from tdsnn.data import DataError
from tdsnn.stimuli import category_images


def test_t_values_are_welch_t():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [10, 15, 20])
    responses = rng.standard_normal((45, 30))
    responses[labels == 1, 0] += 3.0  # a unit selective for category 1
    responses[:, 1] = 0.7  # a constant unit
    t = t_values(responses, labels, 1)
    expected = stats.ttest_ind(responses[labels == 1], responses[labels != 1], equal_var=False).statistic
    np.testing.assert_allclose(t[2:], expected[2:], rtol=1e-10)
    assert t[0] > 8 and t[1] == 0
    maps = selectivity_maps(responses, labels, ["a", "b", "c"])
    assert list(maps) == ["a", "b", "c"] and np.array_equal(maps["b"], t)
    assert selective_fraction(t) < 0.2


def test_overlap_correlations():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(5000), rng.standard_normal(5000)
    names, corr = overlap_correlations({"x": a, "y": a.copy(), "z": b})
    assert names == ["x", "y", "z"]
    assert corr[0, 1] == pytest.approx(1.0) and abs(corr[0, 2]) < 0.05


def test_category_smoothness_separates_smooth_from_scrambled_maps():
    rng = np.random.default_rng(2)
    positions = rng.uniform(0, 70, (3000, 2))
    smooth_map = np.sin(positions[:, 0] / 10) + np.cos(positions[:, 1] / 10)
    smooth = category_smoothness(smooth_map, positions, n_samples=5, sample_size=500)
    scrambled = category_smoothness(rng.permutation(smooth_map), positions, n_samples=5, sample_size=500)
    assert smooth["smoothness"] > 0.5 > scrambled["smoothness"] + 0.3
    assert smooth["chance"] < 0.2 and smooth["curves"].shape == (5, 9)


def test_category_images_reads_folders_and_names_bad_input(tmp_path):
    rng = np.random.default_rng(3)
    for name, mode in (("faces", "RGB"), ("words", "L")):
        (tmp_path / name).mkdir()
        for i in range(3):
            shape = (40, 60, 3) if mode == "RGB" else (50, 30)
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(tmp_path / name / f"{i}.PNG")
    (tmp_path / "faces" / "notes.txt").write_text("not an image")
    images, labels, names = category_images(tmp_path, 24)
    assert images.shape == (6, 3, 24, 24) and names == ["faces", "words"]
    assert labels.tolist() == [0, 0, 0, 1, 1, 1] and 0 <= images.min() and images.max() <= 1
    assert np.allclose(images[3, 0], images[3, 1])  # grayscale repeated to 3 channels
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty holds no"):
        category_images(tmp_path, 24)
    with pytest.raises(DataError, match="is not a directory"):
        category_images(tmp_path / "missing", 24)
    with pytest.raises(DataError, match="at least 2 category sub-folders"):
        category_images(tmp_path / "faces", 24)
