import numpy as np
import torch

from tdsnn.stimuli import sine_gratings


def test_grid_and_metadata():
    images, meta = sine_gratings(16)
    assert images.shape == (640, 3, 16, 16) and images.dtype == torch.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert meta["stimulus_id"].is_unique
    assert sorted(meta["orientation"].unique()) == list(np.arange(0, 180, 22.5))
    np.testing.assert_allclose(sorted(meta["sf_cpi"].unique()), np.linspace(5.5, 110, 9)[:-1])
    assert meta["phase"].nunique() == 5 and set(meta["color"]) == {"bw", "rc"}
    assert (meta.groupby(["orientation", "sf_cpi", "color"]).size() == 5).all()


def test_colour_conditions_and_orientation():
    images, meta = sine_gratings(64)
    bw = images[(meta["color"] == "bw").to_numpy()]
    rc = images[(meta["color"] == "rc").to_numpy()]
    assert torch.equal(bw[:, 0], bw[:, 1]) and torch.equal(bw[:, 1], bw[:, 2])
    torch.testing.assert_close(rc[:, 0], 1 - rc[:, 1])
    # orientation 0 varies along x only; 90 deg along y only
    vertical = images[meta.index[(meta["orientation"] == 0) & (meta["color"] == "bw")][0], 0]
    horizontal = images[meta.index[(meta["orientation"] == 90) & (meta["color"] == "bw")][0], 0]
    assert vertical.std(dim=0).max() < 1e-5 and vertical.std(dim=1).min() > 0.1
    assert horizontal.std(dim=1).max() < 1e-4 and horizontal.std(dim=0).min() > 0.1


def test_any_resolution_and_spatial_frequency():
    for size in (7, 32, 100):
        images, meta = sine_gratings(size)
        assert images.shape[-2:] == (size, size)
    images, meta = sine_gratings(128)
    row = meta.index[(meta["orientation"] == 0) & (meta["sf_cpi"] == 5.5) & (meta["phase"] == 0) & (meta["color"] == "bw")][0]
    profile = images[row, 0, 0] - 0.5
    spectrum = torch.fft.rfft(profile).abs()
    assert int(spectrum.argmax()) in (5, 6)  # 5.5 cycles per image
