"""Tests of the STC loss (tdsnn/stc.py) against constructed cases and brute-force references."""
import math

import numpy as np
import pytest
import torch

from tdsnn.config import STCConfig
from tdsnn.stc import (STCLoss, ccg_correlation, cluster_losses, rate_loss, sync_loss)


def _inv_dist(positions):
    """1 / (||p_i - p_j|| + 1) in float64 numpy."""
    p = np.asarray(positions, dtype=np.float64)
    return 1.0 / (np.linalg.norm(p[:, None] - p[None], axis=-1) + 1.0)


def _lower(mat):
    return mat[np.tril_indices(mat.shape[0], -1)]


def _rates_with_correlation(corr, batch, seed=0):
    """[B, N] rates whose empirical Pearson correlation matrix is exactly ``corr``."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((batch, corr.shape[0]))
    z -= z.mean(0)
    z, _ = np.linalg.qr(z)  # centred orthonormal columns
    return z @ np.linalg.cholesky(corr).T


def _as_spikes(rates, timesteps=4):
    """Real-valued "spikes" [T, B, N] constant over t, so rho = rates (L_L only needs rho)."""
    return torch.tensor(rates, dtype=torch.float32)[None].expand(timesteps, -1, -1).clone()


# ---------------------------------------------------------------- rate loss

def test_rate_loss_ordered_and_anti_ordered():
    pos = np.random.default_rng(1).uniform(0, 3, size=(12, 2))
    d = _inv_dist(pos)  # positive definite, unit diagonal
    lam = 1.0 / np.linalg.eigvalsh(d).max()
    anti = (1 + lam) * np.eye(12) - lam * d  # off-diagonal -lam * d, unit diagonal, PD
    p = torch.tensor(pos, dtype=torch.float32)
    assert rate_loss(_as_spikes(_rates_with_correlation(d, 64)), p).item() == pytest.approx(0.0, abs=1e-5)
    assert rate_loss(_as_spikes(_rates_with_correlation(anti, 64)), p).item() == pytest.approx(1.0, abs=1e-5)


def test_independent_spikes_give_half():
    g = torch.Generator().manual_seed(0)
    spikes = (torch.rand(4, 64, 8, 40, generator=g) < 0.3).float()
    pos = torch.rand(8, 40, 2, generator=g) * 3
    rate_l, sync_l = cluster_losses(spikes, pos, window=1)
    assert rate_l.mean().item() == pytest.approx(0.5, abs=0.05)
    assert sync_l.mean().item() == pytest.approx(0.5, abs=0.05)


def test_rate_loss_matches_numpy():
    rng = np.random.default_rng(3)
    spikes = (rng.random((5, 16, 9)) < 0.4).astype(np.float32)
    pos = rng.uniform(0, 2, size=(9, 2))
    rho = spikes.mean(0)
    r = _lower(np.corrcoef(rho.T))
    expected = 0.5 * (1 - np.corrcoef(r, _lower(_inv_dist(pos)))[0, 1])
    got = rate_loss(torch.tensor(spikes), torch.tensor(pos, dtype=torch.float32))
    assert got.item() == pytest.approx(expected, abs=1e-5)


# ---------------------------------------------------------------- sync loss

def _brute_ccg(s, window):
    """r^CCG by explicit loops over i, j, tau, t, b (float64)."""
    t_len, batch, n = s.shape
    w = min(window, t_len - 1)
    ccg = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            for tau in range(-w, w + 1):
                for t in range(t_len):
                    if 0 <= t + tau < t_len:
                        for b in range(batch):
                            ccg[i, j] += s[t, b, i] * s[t + tau, b, j] / (batch * (t_len - abs(tau)))
    acg = np.diag(ccg)
    return ccg / np.sqrt(acg[:, None] * acg[None, :])


@pytest.mark.parametrize("window", [1, 2, 9])  # 9 is clipped to T - 1 = 4
def test_ccg_matches_brute_force(window):
    rng = np.random.default_rng(window)
    s = (rng.random((5, 3, 4)) < 0.5).astype(np.float32)
    s[0, 0, :] = 1  # no unit silent
    got = ccg_correlation(torch.tensor(s), window).numpy()
    np.testing.assert_allclose(got, _brute_ccg(s.astype(np.float64), window), atol=1e-6)


def test_sync_loss_matches_brute_force():
    rng = np.random.default_rng(7)
    s = (rng.random((6, 4, 7)) < 0.5).astype(np.float32)
    s[0, 0, :] = 1
    pos = rng.uniform(0, 2, size=(7, 2))
    expected = 0.5 * (1 - np.corrcoef(_lower(_brute_ccg(s.astype(np.float64), 2)),
                                      _lower(_inv_dist(pos)))[0, 1])
    got = sync_loss(torch.tensor(s), torch.tensor(pos, dtype=torch.float32), window=2)
    assert got.item() == pytest.approx(expected, abs=1e-5)


def test_ccg_of_identical_trains_is_one():
    s = (torch.rand(4, 8, 1, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    s[1, 0] = 1
    r = ccg_correlation(s.expand(-1, -1, 3), window=1)
    torch.testing.assert_close(r, torch.ones(3, 3), atol=1e-6, rtol=0)


def _pair_coded_spikes(n, shared):
    """Binary spikes [4, B, n] whose r^CCG_ij = shared(|i - j|) / L exactly.

    Each pair (i, j) gets ``shared(|i - j|)`` private coincident spikes, then every
    unit is padded with lone spikes to a common count L. Spikes only at t = 0 and 2,
    so with W = 1 no lagged products occur and all have the same weight 1 / (4 B).
    """
    bins = [[] for _ in range(n)]
    k = 0
    for i in range(n):
        for j in range(i):
            for _ in range(shared(i - j)):
                bins[i].append(k)
                bins[j].append(k)
                k += 1
    count = max(len(b) for b in bins)
    for b in bins:
        pad = count - len(b)
        b.extend(range(k, k + pad))
        k += pad
    batch = (k + 1) // 2
    s = torch.zeros(4, batch, n)
    for unit, b in enumerate(bins):
        for bin_ in b:
            s[2 * (bin_ % 2), bin_ // 2, unit] = 1
    return s


def test_sync_loss_ordered_and_anti_ordered():
    n = 10
    pos = torch.stack([torch.arange(n) * 0.01, torch.zeros(n)], 1)  # 1-D line, 0.01 mm apart
    near = _pair_coded_spikes(n, lambda k: n - k)  # synchrony falls linearly with distance
    far = _pair_coded_spikes(n, lambda k: k)  # rises linearly with distance
    r = ccg_correlation(near, 1)
    assert r[1, 0] > r[5, 0] > r[9, 0] > 0
    assert sync_loss(near, pos, 1).item() == pytest.approx(0.0, abs=2e-3)
    assert sync_loss(far, pos, 1).item() == pytest.approx(1.0, abs=2e-3)


# ---------------------------------------------------------------- NaN safety

@pytest.mark.parametrize("case", ["silent_units", "always_firing_units", "silent_cluster",
                                  "always_firing_cluster"])
def test_degenerate_spikes_give_finite_values_and_gradients(case):
    g = torch.Generator().manual_seed(0)
    s = (torch.rand(4, 8, 20, generator=g) < 0.3).float()
    if case == "silent_units":
        s[:, :, :5] = 0
    elif case == "always_firing_units":
        s[:, :, :5] = 1
    elif case == "silent_cluster":
        s.zero_()
    else:
        s.fill_(1)
    s.requires_grad_(True)
    pos = torch.rand(20, 2, generator=g)
    rl, sl = rate_loss(s, pos), sync_loss(s, pos, 1)
    (rl + sl).backward()
    assert torch.isfinite(rl) and torch.isfinite(sl)
    assert torch.isfinite(s.grad).all()
    if case.endswith("cluster"):  # every similarity equal -> correlation guarded to 0
        assert rl.item() == pytest.approx(0.5, abs=1e-6)
        assert sl.item() == pytest.approx(0.5, abs=1e-6)
    else:
        assert s.grad.abs().sum() > 0


# ---------------------------------------------------------------- STCLoss

class _Sheet:
    """Stand-in for tdsnn.sheets: random positions, random clusters of q units."""

    def __init__(self, n, q, seed):
        self.positions = torch.rand(n, 2, generator=torch.Generator().manual_seed(seed)) * 5
        self.n, self.q = n, q

    def sample(self, m, generator=None):
        return torch.stack([torch.randperm(self.n, generator=generator)[:self.q] for _ in range(m)])


def _setup():
    g = torch.Generator().manual_seed(0)
    spikes = {"layer1.0": (torch.rand(4, 6, 3, 4, 4, generator=g) < 0.3).float(),
              "layer2.0": (torch.rand(4, 6, 5, 2, 2, generator=g) < 0.3).float()}
    sheets = {"layer1.0": _Sheet(48, 12, 1), "layer2.0": _Sheet(20, 10, 2)}
    return spikes, sheets


def test_stc_loss_total_matches_public_functions():
    spikes, sheets = _setup()
    for s in spikes.values():
        s.requires_grad_(True)
    cfg = STCConfig(alpha=2.0, beta=3.0, clusters_per_layer=3)
    out = STCLoss(cfg, timesteps=4)(spikes, sheets, torch.Generator().manual_seed(5))

    g = torch.Generator().manual_seed(5)
    expected, rates, syncs = 0.0, [], []
    for name in cfg.layers:  # the layers present, in config order
        if name not in spikes:
            continue
        flat = spikes[name].detach().flatten(2)
        for idx in sheets[name].sample(3, generator=g):
            pos = sheets[name].positions[idx]
            rates.append(rate_loss(flat[:, :, idx], pos).item())
            syncs.append(sync_loss(flat[:, :, idx], pos, window=1).item())
            expected += (2.0 * rates[-1] + 3.0 * syncs[-1]) / 3
    assert out.total.item() == pytest.approx(expected, abs=1e-5)
    assert out.rate.item() == pytest.approx(np.mean(rates), abs=1e-6)
    assert out.sync.item() == pytest.approx(np.mean(syncs), abs=1e-6)
    assert set(out.per_layer) == {"layer1.0", "layer2.0"}
    assert out.per_layer["layer2.0"][0].item() == pytest.approx(np.mean(rates[3:]), abs=1e-6)
    assert not out.rate.requires_grad
    out.total.backward()
    assert all(torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0 for s in spikes.values())


def test_stc_loss_alpha_beta_scaling_and_skipping():
    spikes, sheets = _setup()

    def run(alpha, beta):
        return STCLoss(STCConfig(alpha=alpha, beta=beta, clusters_per_layer=2), 4)(
            spikes, sheets, torch.Generator().manual_seed(1))

    both, rate_only, sync_only = run(1.0, 1.0), run(1.0, 0.0), run(0.0, 1.0)
    assert math.isnan(rate_only.sync.item()) and math.isnan(sync_only.rate.item())
    assert rate_only.rate.item() == pytest.approx(both.rate.item())
    assert rate_only.total.item() + sync_only.total.item() == pytest.approx(both.total.item(), abs=1e-6)
    # total = (1/M) * sum over 2 layers x 2 clusters -> 2 * alpha * mean(L_L) here
    assert rate_only.total.item() == pytest.approx(2 * rate_only.rate.item(), abs=1e-6)
    assert run(50.0, 0.0).total.item() == pytest.approx(50 * rate_only.total.item(), rel=1e-5)


@pytest.mark.parametrize("timesteps, window, expected", [(4, None, 1), (8, None, 3), (2, None, 1),
                                                         (1, None, 0), (4, 10, 3), (6, 2, 2)])
def test_stc_loss_window(timesteps, window, expected):
    assert STCLoss(STCConfig(window=window), timesteps).window == expected


def test_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(0)
    spikes = torch.rand(4, 5, 2, 6, generator=g, dtype=torch.float64).requires_grad_(True)
    pos = torch.rand(2, 6, 2, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: torch.cat(cluster_losses(s, pos, window=1)), (spikes,),
                                    fast_mode=True)
