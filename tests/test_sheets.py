import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from tdsnn.config import BLOCKS, SheetConfig
from tdsnn.regions import REGIONS
from tdsnn.sheets import (AREAS, BLOCK_AREAS, CorticalSheet, build_sheets, retinotopic_positions, rf_centers,
                          sample_clusters, sheet_key, units_in_squares, window_origins)

SMALL = SheetConfig(n_clusters=200)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_area_table():
    assert {n: (a.side_mm, a.cluster_width_mm) for n, a in AREAS.items()} == {
        "retina": (2.4, 0.0475), "V1": (36.75, 1.626), "V2": (35.0, 3.977),
        "V4": (22.4, 2.545), "IT": (70.0, 31.818)}
    assert tuple(BLOCK_AREAS) == BLOCKS
    assert [BLOCK_AREAS[b] for b in BLOCKS] == ["retina", "retina", "V1", "V1", "V2", "V4", "IT", "IT"]


def test_rf_centers_formula():
    centers, width = rf_centers(4, 10.0, 0.2)
    assert width == pytest.approx(10.0 / (4 - 0.8 + 0.2))
    assert torch.allclose(centers, torch.linspace(width / 2, 10.0 - width / 2, 4, dtype=torch.float64))


def test_retinotopic_no_jitter_units_near_their_anchor():
    c, h, w, side = 3, 2, 5, 10.0  # non-square grid
    pos = retinotopic_positions((c, h, w), side, 4, 0.0, gen())
    assert pos.shape == (c * h * w, 2) and pos.dtype == torch.float32
    pos = pos.double()
    overlap = min(0.1 * 4 / h, 1.0)  # 0.2
    cx, wx = rf_centers(w, side, overlap)
    cy, wy = rf_centers(h, side, overlap)
    grid = pos.view(c, h, w, 2)  # channel-major flat order c*H*W + h*W + w
    assert ((grid[..., 0] - cx.view(1, 1, w)).abs() <= wx / 2 + 1e-5).all()
    assert ((grid[..., 1] - cy.view(1, h, 1)).abs() <= wy / 2 + 1e-5).all()
    # channels are scattered, not stacked on the anchor
    assert grid[..., 0].std(0).min() > 0.05 * wx


def test_retinotopic_jitter_keeps_extent_and_is_deterministic():
    dims = (8, 6, 4)
    plain = retinotopic_positions(dims, 36.75, 6, 0.0, gen(3))
    jittered = retinotopic_positions(dims, 36.75, 6, 0.3, gen(3))
    assert torch.allclose(jittered.amin(0), plain.amin(0), atol=1e-4)
    assert torch.allclose(jittered.amax(0), plain.amax(0), atol=1e-4)
    moved = (jittered - plain).norm(dim=1)
    assert moved.mean() > 0.05
    assert torch.equal(jittered, retinotopic_positions(dims, 36.75, 6, 0.3, gen(3)))
    assert not torch.equal(jittered, retinotopic_positions(dims, 36.75, 6, 0.3, gen(4)))


def brute_force_inside(positions, origins, width):
    lo = origins[:, None, :]
    return ((positions[None] >= lo) & (positions[None] <= lo + width)).all(-1)  # [P, N]


def test_units_in_squares_matches_brute_force():
    positions = torch.rand(6000, 2, generator=gen(1)) * 10
    origins = window_origins(positions, 1.3, 60, gen(2))
    members, counts = units_in_squares(positions, origins, 1.3, 25, gen(3))
    inside = brute_force_inside(positions, origins, 1.3)
    assert torch.equal(counts, inside.sum(1))
    assert counts.min() > 25  # every square is subsampled here
    for p in range(len(origins)):
        row = members[p]
        assert len(row) == 25 and (row >= 0).all()
        assert len(set(row.tolist())) == 25
        assert inside[p, row].all()


def test_units_in_squares_same_positions_after_permutation():
    positions = torch.rand(2000, 2, generator=gen(1)) * 10
    perm = torch.randperm(2000, generator=gen(2))
    origins = window_origins(positions, 2.0, 20, gen(3))
    a, _ = units_in_squares(positions, origins, 2.0, 30, gen(4))
    b, _ = units_in_squares(positions[perm], origins, 2.0, 30, gen(4))
    assert torch.equal(positions[a], positions[perm][b])


def test_sample_clusters_tdann_trimming():
    # uniform density: sizes vary, Q is the 5th percentile of sizes (> min_units), rows in a square
    positions = torch.rand(20000, 2, generator=gen(0)) * 20
    width = 2.0
    clusters = sample_clusters(positions, width, 400, 0.95, 25, 500, gen(1))
    g = gen(1)
    origins = window_origins(positions, width, 400, g)
    counts = brute_force_inside(positions, origins, width).sum(1)
    q = int(torch.quantile(counts.double(), 0.05))
    assert q > 25
    assert clusters.shape == (int((counts >= q).sum()), q)
    assert clusters.shape[0] >= 0.95 * 400
    span = positions[clusters].amax(1) - positions[clusters].amin(1)
    assert (span <= width + 1e-5).all()
    assert all(len(set(r.tolist())) == q for r in clusters)


def test_sample_clusters_caps_at_max_units():
    positions = torch.rand(5000, 2, generator=gen(0)) * 4
    clusters = sample_clusters(positions, 3.0, 50, 0.95, 25, 100, gen(1))
    assert clusters.shape == (50, 100)


def test_sample_clusters_small_windows_fall_back_to_nearest_units():
    # ~2 units per window: TDANN keeps no window of >= 25 units; we take the 25 nearest to each centre
    positions = torch.rand(500, 2, generator=gen(0)) * 10
    width = 0.6
    clusters = sample_clusters(positions, width, 30, 0.95, 25, 500, gen(1))
    assert clusters.shape == (30, 25)
    origins = window_origins(positions, width, 30, gen(1))
    centers = origins + width / 2
    cheb = (positions[None] - centers[:, None]).abs().amax(-1)  # [P, N]
    chosen = cheb.gather(1, clusters)
    others = cheb.scatter(1, clusters, math.inf)
    assert (chosen.amax(1) <= others.amin(1)).all()
    assert all(len(set(r.tolist())) == 25 for r in clusters)


def test_sample_clusters_fewer_units_than_min_units():
    positions = torch.rand(10, 2, generator=gen(0))
    clusters = sample_clusters(positions, 0.1, 5, 0.95, 25, 500, gen(1))
    assert clusters.shape == (5, 10)
    assert all(sorted(r.tolist()) == list(range(10)) for r in clusters)


def test_cortical_sheet_build_and_sample():
    sheet = CorticalSheet.build("V1", (16, 4, 4), 8, SMALL, gen())
    assert sheet.positions.shape == (256, 2) and sheet.positions.dtype == torch.float32
    assert sheet.clusters.dtype == torch.int32 and sheet.clusters.shape[1] == 25
    assert (sheet.side_mm, sheet.cluster_width_mm, sheet.dims, sheet.area) == (36.75, 1.626, (16, 4, 4), "V1")
    rows = sheet.sample(7, generator=gen(5))
    assert rows.shape == (7, 25)
    assert torch.equal(rows, sheet.sample(7, generator=gen(5)))
    cluster_set = {tuple(r) for r in sheet.clusters.tolist()}
    assert all(tuple(r) in cluster_set for r in rows.tolist())


def test_set_positions_recomputes_clusters():
    config = SheetConfig(n_clusters=100)
    sheet = CorticalSheet.build("V2", (256, 4, 4), 8, config, gen())
    new = sheet.positions[torch.randperm(len(sheet.positions), generator=gen(1))]
    sheet.set_positions(new, config)
    assert torch.equal(sheet.positions, new)
    span = new[sheet.clusters].amax(1) - new[sheet.clusters].amin(1)
    assert (span <= sheet.cluster_width_mm + 1e-4).all()
    again = CorticalSheet.build("V2", (256, 4, 4), 8, config, gen())
    again.set_positions(new, config)
    assert torch.equal(again.clusters, sheet.clusters)


def test_state_dict_restores_differently_shaped_clusters(tmp_path):
    a = CorticalSheet.build("V1", (16, 4, 4), 8, SMALL, gen(0))
    a.set_positions(a.positions.flip(0), SheetConfig(n_clusters=37, min_units=11))
    assert a.clusters.shape == (37, 11)
    save_file(a.state_dict(), str(tmp_path / "sheet.safetensors"))
    b = CorticalSheet.build("V1", (16, 4, 4), 8, SMALL, gen(1))
    assert b.clusters.shape != a.clusters.shape
    b.load_state_dict(load_file(str(tmp_path / "sheet.safetensors")))
    assert torch.equal(b.positions, a.positions)
    assert torch.equal(b.clusters, a.clusters)
    with pytest.raises(RuntimeError):  # positions of other dims are rejected
        CorticalSheet.build("V1", (8, 4, 4), 8, SMALL, gen(0)).load_state_dict(a.state_dict())


def test_build_sheets():
    dims = {"layer1.0": (8, 8, 8), "layer1.1": (8, 8, 8), "layer2.0": (16, 4, 4), "layer2.1": (16, 4, 4),
            "layer3.0": (32, 2, 2), "layer3.1": (32, 2, 2), "layer4.0": (64, 1, 1), "layer4.1": (64, 1, 1)}
    sheets = build_sheets(dims, SMALL)
    assert list(sheets.keys()) == [sheet_key(b) for b in BLOCKS] == [b.replace(".", "_") for b in BLOCKS]
    for block in BLOCKS:
        sheet = sheets[sheet_key(block)]
        assert sheet.area == BLOCK_AREAS[block] and sheet.dims == dims[block]
        assert sheet.positions.shape == (math.prod(dims[block]), 2)
        assert sheet.positions.min() >= 0 and sheet.positions.max() <= sheet.side_mm + 1e-4
    # first_height comes from layer1.0 (H=8): layer2.0 (H=4) uses overlap 0.1 * 8 / 4 = 0.2
    flat = build_sheets(dims, SheetConfig(n_clusters=10, jitter_mm=0.0))["layer2_0"].positions.double()
    x = flat.view(16, 4, 4, 2)[..., 0]
    for overlap, fits in ((0.2, True), (0.1, False)):
        cx, wx = rf_centers(4, 36.75, overlap)
        assert bool(((x - cx).abs() <= wx / 2 + 1e-4).all()) == fits
    again = build_sheets(dims, SMALL)
    for key in sheets:
        assert torch.equal(sheets[key].positions, again[key].positions)
        assert torch.equal(sheets[key].clusters, again[key].clusters)


def test_build_sheets_follows_the_given_areas():
    dims = {"V1": (8, 8, 8), "V2": (16, 4, 4), "V4": (32, 2, 2), "IT": (64, 1, 1)}
    sheets = build_sheets(dims, SMALL, {region: region for region in REGIONS})
    assert list(sheets) == list(REGIONS) and [s.area for s in sheets.values()] == list(REGIONS)
    assert [s.side_mm for s in sheets.values()] == [AREAS[r].side_mm for r in REGIONS]
    # first_height comes from V1 (H=8), so V1 itself tiles with overlap 0.1
    flat = build_sheets(dims, SheetConfig(n_clusters=10, jitter_mm=0.0), {r: r for r in REGIONS})["V1"].positions
    cx, wx = rf_centers(8, 36.75, 0.1)
    assert ((flat.double().view(8, 8, 8, 2)[..., 0] - cx).abs() <= wx / 2 + 1e-4).all()
    with pytest.raises(ValueError, match="no cortical area for blocks"):
        build_sheets({"layer2.0": (8, 4, 4)}, SMALL, {"V1": "V1"})
