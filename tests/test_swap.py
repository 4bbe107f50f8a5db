import math

import numpy as np
import pytest
import torch

import tdsnn.swap as swap_module
from tdsnn.swap import SwapResult, _pairs, _swap_windows, standardize, swap_optimize, window_loss


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are tiny: OpenMP fan-out only adds overhead (badly so on a busy 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def structured(n_units=800, stimuli=48, side=10.0, seed=0):
    """Responses [S, N] that are smooth functions (period ~4 mm) of a hidden map position,
    and positions [N, 2] (mm) shuffled against that map."""
    g = gen(seed)
    positions = torch.rand(n_units, 2, generator=g, dtype=torch.float64) * side
    hidden = positions[torch.randperm(n_units, generator=g)]
    k = torch.randn(stimuli, 2, generator=g, dtype=torch.float64)
    k = k / k.norm(dim=1, keepdim=True) * (2 * math.pi / 4.0)
    phase = 2 * math.pi * torch.rand(stimuli, 1, generator=g, dtype=torch.float64)
    responses = torch.cos(k @ hidden.T + phase) + 0.3 * torch.randn(stimuli, n_units, generator=g, dtype=torch.float64)
    return responses.float(), positions.float()


def same_rows(a, b):
    return sorted(map(tuple, a.tolist())) == sorted(map(tuple, b.tolist()))


def test_swap_lowers_loss_on_structured_data():
    responses, positions = structured()
    res = swap_optimize(responses, positions, 2.0, n_windows=80, steps_per_window=200, progress=False)
    assert isinstance(res, SwapResult)
    assert res.loss_before > 0.45  # shuffled: distance says nothing about correlation
    assert res.loss_after < res.loss_before - 0.1
    assert res.attempts % 200 == 0 and res.attempts >= 200 * 70
    assert 0 < res.accepted < res.attempts
    assert res.seconds > 0
    assert res.positions.shape == positions.shape and res.positions.dtype == positions.dtype
    assert same_rows(res.positions, positions)
    assert (res.positions != positions).any(1).sum() > 100
    # the same evaluation windows score the input and the output positions
    assert window_loss(responses, positions, 2.0, seed=1) == res.loss_before
    assert window_loss(responses, res.positions, 2.0, seed=1) == res.loss_after


def test_swap_is_deterministic_under_seed():
    responses, positions = structured(400, seed=1)
    a = swap_optimize(responses, positions, 2.5, 30, 100, seed=3, progress=False)
    b = swap_optimize(responses, positions, 2.5, 30, 100, seed=3, progress=False)
    c = swap_optimize(responses, positions, 2.5, 30, 100, seed=4, progress=False)
    assert torch.equal(a.positions, b.positions) and a.accepted == b.accepted
    assert not torch.equal(a.positions, c.positions)


def test_batched_schedule_equals_one_window_at_a_time(monkeypatch):
    responses, positions = structured(600, seed=2)
    calls = []
    inner = swap_module._swap_windows
    monkeypatch.setattr(swap_module, "_swap_windows", lambda *a: calls.append(len(a[4])) or inner(*a))
    batched = swap_optimize(responses, positions, 1.5, 60, 50, seed=5, progress=False, eval_windows=1)
    assert max(calls) > 5  # disjoint windows really ran together
    monkeypatch.setattr(swap_module, "_LOOKAHEAD", 1)
    calls.clear()
    sequential = swap_optimize(responses, positions, 1.5, 60, 50, seed=5, progress=False, eval_windows=1)
    assert max(calls) == 1
    assert torch.equal(batched.positions, sequential.positions)
    assert batched.accepted == sequential.accepted


def z64(features):
    x = features - features.mean(0)
    norm = x.norm(dim=0)
    return torch.where(norm > 0, x / norm, 0.0).T.contiguous()  # [n, S]


def tdann_reference(features, xy, pairs):
    """TDANN's swap_optimize_positions on one window (numpy, float64); pairs are slots,
    i.e. the units currently at those positions are swapped. Returns unit positions."""
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.nan_to_num(np.corrcoef(features.T), nan=0.0)
    pos, at = xy.copy(), np.arange(len(xy))

    def loss(ind):
        d = np.sqrt(((pos[ind][:, None, :] - pos[None, :, :]) ** 2).sum(-1))
        return (1 - np.corrcoef(corr[ind].ravel(), 1.0 / (d.ravel() + 1.0))[0, 1]) / 2

    for a, b in pairs:
        ind = [at[a], at[b]]
        before = loss(ind)
        pos[ind] = pos[ind[::-1]]
        if loss(ind) >= before:
            pos[ind] = pos[ind[::-1]]
        else:
            at[a], at[b] = at[b], at[a]
    return pos


def test_swap_rule_matches_tdann_loss():
    g = gen(7)
    n, steps = 40, 300
    features = torch.randn(30, n, generator=g, dtype=torch.float64).cumsum(1)  # neighbours correlate
    features[:, 5] = 2.0  # one constant unit
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 3
    pairs = _pairs(torch.rand(1, steps, 2, generator=g, dtype=torch.float64), torch.tensor([n]))
    perm = torch.arange(n)
    kept = _swap_windows(z64(features), perm, xy, torch.arange(n)[None], torch.tensor([n]), pairs)
    ours = torch.empty_like(xy)
    ours[perm] = xy
    ref = tdann_reference(features.numpy(), xy.numpy(), pairs[0].numpy())
    assert 10 < kept < steps
    assert np.array_equal(ours.numpy(), ref)


def test_lockstep_windows_equal_separate_windows():
    g = gen(8)
    n_units = 120
    features = torch.randn(20, n_units, generator=g, dtype=torch.float64).cumsum(1)
    xy = torch.rand(n_units, 2, generator=g, dtype=torch.float64) * 5
    z = z64(features)
    slots = torch.full((3, 50), -1)
    sizes = torch.tensor([50, 23, 37])  # different sizes: padding in the batch
    order = torch.randperm(n_units, generator=g)
    start = 0
    for i, s in enumerate(sizes.tolist()):
        slots[i, :s] = order[start:start + s]
        start += s
    pairs = _pairs(torch.rand(3, 200, 2, generator=g, dtype=torch.float64), sizes)
    together = torch.arange(n_units)
    kept = _swap_windows(z, together, xy, slots, sizes, pairs)
    apart = torch.arange(n_units)
    kept_apart = sum(_swap_windows(z, apart, xy, slots[i:i + 1], sizes[i:i + 1], pairs[i:i + 1]) for i in range(3))
    assert torch.equal(together, apart) and kept == kept_apart > 0
    assert not torch.equal(together, torch.arange(n_units))


def test_pairs_are_distinct_and_in_range():
    sizes = torch.tensor([5, 9, 500])
    p = _pairs(torch.rand(3, 2000, 2, generator=gen(0), dtype=torch.float64), sizes)
    assert (p[..., 0] != p[..., 1]).all() and (p >= 0).all() and (p < sizes[:, None, None]).all()
    assert set(p[0].flatten().tolist()) == set(range(5))


def test_window_loss_matches_direct_computation():
    g = gen(9)
    features = torch.randn(25, 60, generator=g, dtype=torch.float64).cumsum(1)
    xy = torch.rand(60, 2, generator=g, dtype=torch.float64)
    corr = np.corrcoef(features.numpy().T)
    d = np.sqrt(((xy.numpy()[:, None] - xy.numpy()[None]) ** 2).sum(-1))
    i, j = np.tril_indices(60, -1)
    expected = (1 - np.corrcoef(corr[i, j], 1 / (d[i, j] + 1))[0, 1]) / 2
    # a 2 mm square always covers the whole 1 mm sheet
    assert math.isclose(window_loss(features.float(), xy.float(), 2.0, n_windows=3), expected, rel_tol=1e-4)


def test_window_loss_ignores_unit_labels():
    responses, positions = structured(1500, seed=3)
    relabel = torch.randperm(1500, generator=gen(1))
    a = window_loss(responses, positions, 2.0, n_windows=20, seed=4, max_units=30)
    b = window_loss(responses[:, relabel], positions[relabel], 2.0, n_windows=20, seed=4, max_units=30)
    assert math.isclose(a, b, rel_tol=1e-6)


def test_random_responses_do_not_crash():
    g = gen(10)
    responses = torch.rand(32, 500, generator=g)
    positions = torch.rand(500, 2, generator=g) * 8
    res = swap_optimize(responses, positions, 2.0, 40, 100, progress=False)
    assert math.isfinite(res.loss_before) and math.isfinite(res.loss_after)
    assert abs(res.loss_before - 0.5) < 0.05  # no structure
    assert same_rows(res.positions, positions)


def test_constant_units_give_no_nan():
    responses, positions = structured(500, seed=4)
    responses[:, ::3] = 0.7  # silent/constant units
    z = standardize(responses)
    assert torch.isfinite(z).all()
    assert (z[::3] == 0).all() and torch.allclose(z[1::3].norm(dim=1), torch.ones(len(z[1::3])))
    res = swap_optimize(responses, positions, 2.0, 40, 100, progress=False)
    assert torch.isfinite(res.positions).all() and same_rows(res.positions, positions)
    assert math.isfinite(res.loss_before) and math.isfinite(res.loss_after)
    assert res.loss_after < res.loss_before
    # all units constant: correlations are all 0, Pearson is taken as 0, no swap is kept
    flat = swap_optimize(torch.ones(8, 500), positions, 2.0, 10, 50, progress=False)
    assert flat.loss_before == flat.loss_after == 0.5 and flat.accepted == 0
    assert torch.equal(flat.positions, positions)


def test_tiny_sheet_skips_sparse_windows():
    positions = torch.rand(20, 2, generator=gen(0)) * 50  # < 5 units per 2 mm window
    res = swap_optimize(torch.rand(8, 20, generator=gen(1)), positions, 2.0, 10, 50, progress=False)
    assert res.attempts == 0 and res.accepted == 0 and math.isnan(res.loss_before)
    assert torch.equal(res.positions, positions)
