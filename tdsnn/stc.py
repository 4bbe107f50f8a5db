"""Spatio-Temporal Constraints (STC) loss (docs/method.md §3, TDSNN Eqs. 3-7).

For one cluster of Q units with positions p (mm) and spikes s_i^b(t) in {0, 1}:

    d_ij   = 1 / (||p_i - p_j|| + 1)                             (TDANN's similarity)
    L_L    = 1/2 (1 - Pearson(lower(Pearson_b(rho_i, rho_j)), lower(d))),  rho = mean_t s
    CCG_ij = sum_{tau=-W..W} 1 / (B (T - |tau|)) sum_b sum_t s_i^b(t) s_j^b(t + tau)
    L_S    = 1/2 (1 - Pearson(lower(CCG_ij / sqrt(CCG_ii CCG_jj)), lower(d)))

``lower`` is the strict lower triangle (i > j). All three matrices are symmetric, so the
code takes the Pearson over all off-diagonal entries, which is the same number.

Both similarity matrices are Gram matrices ``x^T A x`` of per-unit vectors x [D, Q]:
standardized rates over the batch (D = B, A = I) for L_L, and ACG-normalised spike trains
over (t, b) (D = T B, A = kernel (x) I_B) for L_S, with the lag kernel ``kernel[t, u] =
1 / (B (T - |u - t|))`` for ``|u - t| <= W`` (0 otherwise; lags stop at T - 1, which clips
W). So r^CCG is one bmm of s with its time-smoothed copy. The batched core works
on M clusters at once (``spikes [T, B, M, Q]``, ``positions [M, Q, 2]``) and fuses Gram
matrix and Pearson into one autograd function, whose backward uses the symmetry (one
bmm instead of two) and never builds the lower triangle; the single-cluster functions
and :class:`STCLoss` both call it. Computation is in float32 (float64 stays float64).

NaN guard (TDANN's: zero std -> correlation 0): a vector whose spread is numerically
zero (RMS deviation from its mean <= 1e-6, e.g. the rate of a unit silent or always
firing over the batch, or similarities all equal) is divided by 1 instead of its norm,
so its correlations are ~0 and value and gradient stay finite. A zero autocorrelogram
(a silent unit) likewise gives r^CCG = 0. A cluster whose similarities are all equal
has loss 0.5. Nothing is detached.
"""
from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Optional, Protocol

import torch
from torch import Tensor

from .config import STCConfig

#: RMS deviation below which a vector counts as constant (float32 rounding level).
_CONSTANT_RMS = 1e-6


def _compute_dtype(x: Tensor) -> Tensor:
    """``x`` in float32, or float64 if it already is."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _guarded_norm(sum_sq: Tensor, count: int) -> Tensor:
    """L2 norm of ``count`` centred values from their sum of squares, 1 where they are
    ~constant (safe to differentiate: the sqrt never sees 0)."""
    constant = sum_sq <= _CONSTANT_RMS ** 2 * count
    return torch.where(constant, torch.ones_like(sum_sq), sum_sq).sqrt()


def _smooth(x: Tensor, kernel: Optional[Tensor]) -> Tensor:
    """Apply ``kernel [T, T]`` along the leading T axis of ``x [T, ...]`` (identity if None)."""
    return x if kernel is None else (kernel @ x.reshape(kernel.shape[0], -1)).view_as(x)


def _columns(x: Tensor) -> Tensor:
    """``x [..., M, Q]`` as M matrices [M, D, Q], D the product of the leading dims."""
    return x.reshape(-1, *x.shape[-2:]).transpose(0, 1)


def _gram(x: Tensor, y: Tensor) -> Tensor:
    """``x^T y`` per cluster: x, y [..., M, Q] -> [M, Q, Q]."""
    return _columns(x).mT @ _columns(y)


def distance_similarity(positions: Tensor) -> Tensor:
    """1 / (||p_i - p_j|| + 1), standardized over the off-diagonal entries.

    positions: [M, Q, 2] in mm. Returns [M, Q, Q]: symmetric, zero diagonal, zero sum
    and unit Frobenius norm per cluster (all zeros if the distances are all equal).
    """
    positions = _compute_dtype(positions)
    positions = positions - positions.mean(1, keepdim=True)  # keeps cdist's mm path precise
    sim = torch.cdist(positions, positions).add_(1.0).reciprocal_()
    q = sim.shape[-1]
    n_off = q * (q - 1)
    diag = sim.diagonal(dim1=1, dim2=2)
    sim.sub_(((sim.sum((1, 2)) - diag.sum(1)) / n_off)[:, None, None])
    diag.zero_()
    return sim.div_(_guarded_norm(torch.linalg.vector_norm(sim, dim=(1, 2), keepdim=True) ** 2, n_off))


def _rate_vectors(spikes: Tensor) -> Tensor:
    """Firing rates standardized over the batch: [T, B, M, Q] -> [B, M, Q]; their Gram
    matrix is the Pearson correlation of the rates (0 for a constant-rate unit)."""
    rates = _compute_dtype(spikes).mean(0)
    centred = rates - rates.mean(0)
    return centred / _guarded_norm((centred * centred).sum(0), rates.shape[0])


def _ccg_vectors(spikes: Tensor, window: int) -> tuple[Tensor, Tensor]:
    """ACG-normalised trains [T, B, M, Q] and the lag kernel [T, T] such that
    ``x^T (kernel (x) I_B) x`` is r^CCG. window: W in timesteps, clipped to T - 1."""
    spikes = _compute_dtype(spikes)
    t, b = spikes.shape[:2]
    steps = torch.arange(t, device=spikes.device)
    lag = (steps[None, :] - steps[:, None]).abs()
    # lags never exceed T - 1, so a window W > T - 1 acts as T - 1
    kernel = torch.where(lag <= window, 1.0 / (b * (t - lag)), 0.0).to(spikes.dtype)
    acg = (spikes * _smooth(spikes, kernel)).sum((0, 1))  # [M, Q]
    return spikes * torch.where(acg > 0, acg, torch.ones_like(acg)).rsqrt(), kernel  # silent -> 0


def ccg_similarity(spikes: Tensor, window: int) -> Tensor:
    """r^CCG_ij = CCG_ij / sqrt(ACG_i ACG_j): [T, B, M, Q] -> [M, Q, Q] (silent units: 0).
    window: W in timesteps, clipped to T - 1."""
    x, kernel = _ccg_vectors(spikes, window)
    return _gram(x, _smooth(x, kernel))


class _GramPearson(torch.autograd.Function):
    """Pearson over off-diagonal entries between r = x^T A x and standardized d -> [M].

    x: [T, B, M, Q] with ``kernel`` [T, T] (A = kernel (x) I_B), or [B, M, Q] with None
    (A = I); dist_sim: [M, Q, Q] from :func:`distance_similarity`. Works in place on r
    (centred, diagonal zeroed), which then becomes dcorr/dr for the backward
    ``x.grad = 2 (A x) dcorr/dr`` (r symmetric: one bmm).
    """

    @staticmethod
    def forward(ctx, x: Tensor, kernel: Optional[Tensor], dist_sim: Tensor) -> Tensor:
        y = _smooth(x, kernel)
        r = _gram(x, y)  # [M, Q, Q]
        q = r.shape[-1]
        n_off = q * (q - 1)
        diag = r.diagonal(dim1=1, dim2=2)
        mean = ((r.sum((1, 2)) - diag.sum(1)) / n_off)[:, None, None]
        centred = r.sub_(mean)
        diag.zero_()
        norm = _guarded_norm(torch.linalg.vector_norm(centred, dim=(1, 2)) ** 2, n_off)
        m = r.shape[0]  # row-wise dots: no [M, Q, Q] temporary
        corr = (centred.view(m * q, 1, q) @ dist_sim.view(m * q, q, 1)).view(m, q).sum(1) / norm
        if ctx.needs_input_grad[0]:
            # dcorr/dr_ij = d_ij / norm - corr (r_ij - mean) / norm^2 off the diagonal (for a
            # guarded, constant r: ~d_ij, as corr and r - mean are ~0)
            dcorr = centred.mul_((-corr / norm ** 2)[:, None, None])
            dcorr.addcmul_(dist_sim, norm.reciprocal()[:, None, None])
            ctx.save_for_backward(y, dcorr)
        return corr

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_corr: Tensor):
        y, dcorr = ctx.saved_tensors
        grad = (_columns(y) @ dcorr).mul_((2 * grad_corr)[:, None, None])  # [M, D, Q]
        return grad.transpose(0, 1).reshape(y.shape), None, None


def cluster_losses(spikes: Tensor, positions: Tensor, window: int, rate: bool = True,
                   sync: bool = True) -> tuple[Optional[Tensor], Optional[Tensor]]:
    """Per-cluster STC losses (batched core).

    spikes: [T, B, M, Q] (float, from a surrogate-gradient neuron); positions: [M, Q, 2]
    in mm; window: CCG lag window W in timesteps. Returns ``(L_L [M], L_S [M])``, each in
    [0, 1]; a term is None when its flag is False (and is then not computed).
    """
    with torch.autocast(spikes.device.type, enabled=False):
        dist_sim = distance_similarity(positions.to(spikes.device))
        rate_l = sync_l = None
        if rate:
            rate_l = 0.5 * (1.0 - _GramPearson.apply(_rate_vectors(spikes), None, dist_sim))
        if sync:
            sync_l = 0.5 * (1.0 - _GramPearson.apply(*_ccg_vectors(spikes, window), dist_sim))
    return rate_l, sync_l


def rate_loss(spikes: Tensor, positions: Tensor) -> Tensor:
    """Long-timescale loss L_L of one cluster. spikes: [T, B, N]; positions: [N, 2] mm."""
    return cluster_losses(spikes[:, :, None], positions[None], 0, sync=False)[0][0]


def sync_loss(spikes: Tensor, positions: Tensor, window: int) -> Tensor:
    """Short-timescale loss L_S of one cluster. spikes: [T, B, N]; positions: [N, 2] mm;
    window: W in timesteps (clipped to T - 1)."""
    return cluster_losses(spikes[:, :, None], positions[None], window, rate=False)[1][0]


def ccg_correlation(spikes: Tensor, window: int) -> Tensor:
    """r^CCG of one cluster. spikes: [T, B, N]; window: W in timesteps. Returns [N, N]."""
    return ccg_similarity(spikes[:, :, None], window)[0]


class Sheet(Protocol):
    """What :class:`STCLoss` needs from a cortical sheet (``tdsnn.sheets``)."""
    positions: Tensor  # [C*H*W, 2] mm, flat order c*H*W + h*W + w

    def sample(self, m: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """Indices [m, Q] of m random clusters."""


class STCOutput(NamedTuple):
    """total: differentiable scalar added to the task loss. rate / sync: detached means
    of L_L / L_S over layers x clusters (nan for a skipped term). per_layer: layer name ->
    detached (mean L_L, mean L_S) over its clusters."""
    total: Tensor
    rate: Tensor
    sync: Tensor
    per_layer: dict[str, tuple[Tensor, Tensor]]


class STCLoss(torch.nn.Module):
    """(1/M) sum_layers sum_m [alpha L_L + beta L_S] over M clusters sampled per layer.

    The rate term is not computed when alpha == 0, the sync term not when beta == 0;
    a skipped term is reported as nan in the logged values and contributes nothing
    to ``total``.
    """

    def __init__(self, config: STCConfig, timesteps: int):
        super().__init__()
        self.config = config
        self.window = min(config.resolved_window(timesteps), timesteps - 1)

    def forward(self, block_spikes: Mapping[str, Tensor], sheets: Mapping[str, Sheet],
                generator: Optional[torch.Generator] = None) -> STCOutput:
        """block_spikes: layer name -> spikes [T, B, C, H, W]; sheets: layer name -> sheet;
        generator: RNG of the cluster sampling. Layers of ``config.layers`` missing from
        ``block_spikes`` are skipped."""
        cfg = self.config
        use_rate, use_sync = cfg.alpha != 0, cfg.beta != 0
        device = next(iter(block_spikes.values()), torch.empty(0)).device
        nan = torch.full((), math.nan, device=device)
        total = torch.zeros((), device=device)
        rates, syncs, per_layer = [], [], {}
        for name in cfg.layers:
            if name not in block_spikes:
                continue
            spikes = block_spikes[name]
            t, b = spikes.shape[:2]
            sheet = sheets[name]
            idx = sheet.sample(cfg.clusters_per_layer, generator=generator)
            positions = sheet.positions[idx.to(sheet.positions.device)].to(device)  # [M, Q, 2]
            m, q = idx.shape
            # 2-D index_select (the fast path) on [T B, N]
            cluster_spikes = spikes.reshape(t * b, -1).index_select(1, idx.flatten().to(device))
            cluster_spikes = cluster_spikes.view(t, b, m, q)
            rate_l, sync_l = cluster_losses(cluster_spikes, positions, self.window, use_rate, use_sync)
            if use_rate:
                total = total + cfg.alpha * rate_l.sum()
            if use_sync:
                total = total + cfg.beta * sync_l.sum()
            rate_l = rate_l.detach() if use_rate else nan.expand(m)
            sync_l = sync_l.detach() if use_sync else nan.expand(m)
            rates.append(rate_l)
            syncs.append(sync_l)
            per_layer[name] = (rate_l.mean(), sync_l.mean())
        rate = torch.cat(rates).mean() if rates else nan
        sync = torch.cat(syncs).mean() if syncs else nan
        return STCOutput(total / cfg.clusters_per_layer, rate, sync, per_layer)
