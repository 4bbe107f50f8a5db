"""Position pre-optimization by swapping units (docs/method.md §2 step 3, after TDANN's swapopt).

TDANN picks random square windows one after another and, inside each, makes
``steps_per_window`` attempts: swap the positions of two random units of the window and
keep the swap only if it lowers (1 - Pearson(corr rows of the two units vs the window's
units, 1 / (d + 1))) / 2. Here windows whose squares do not overlap are processed together
and their attempts run in lockstep with batched tensor ops. A window waits until every
earlier window overlapping it is done, so the result equals running the same windows and
draws one after another.

Swapping never moves a position, only which unit sits there: the square windows select
fixed "slots" (the initial positions) and the state is the unit sitting in each slot.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from .sheets import units_in_squares, window_origins

#: Windows holding fewer units are skipped (TDANN: "don't bother if there aren't even 5").
MIN_WINDOW_UNITS = 5
# Earliest pending windows checked for overlaps per round.
_LOOKAHEAD = 1024
# Windows per block of pre-drawn attempt uniforms.
_DRAW_BLOCK = 1024
# Elements of the per-chunk window matrices (2 x [B, n, n]) and of the gathered responses.
_CHUNK_ELEMENTS = 1 << 25
_GATHER_ELEMENTS = 1 << 22


@dataclass
class SwapResult:
    """positions: [N, 2] optimized positions (mm), a permutation of the input rows;
    loss_before / loss_after: ``window_loss`` on the same evaluation windows; accepted /
    attempts: kept swaps / attempted swaps; seconds: wall time of standardizing the responses
    and swapping (not of the two evaluations)."""
    positions: Tensor
    loss_before: float
    loss_after: float
    accepted: int
    attempts: int
    seconds: float


def standardize(responses: Tensor, chunk: int = 256) -> Tensor:
    """responses [S, N] -> z [N, S] float32 with z_i . z_j = Pearson(unit i, unit j) over the
    S stimuli; constant units get z = 0, i.e. correlation 0 (TDANN's NaN -> 0)."""
    z = torch.empty((responses.shape[1], responses.shape[0]), dtype=torch.float32, device=responses.device)
    for i in range(0, responses.shape[1], chunk):
        x = responses[:, i:i + chunk].float()
        constant = x.amax(0) == x.amin(0)
        x = x - x.mean(0)
        z[i:i + chunk] = (x / x.norm(dim=0)).masked_fill_(constant, 0.0).T
    return z


def window_loss(responses: Tensor, positions: Tensor, window_mm: float, n_windows: int = 100,
                seed: int = 0, max_units: int = 500) -> float:
    """Mean over n_windows random squares of width window_mm of TDANN's window loss
    (1 - Pearson(lower triangle of the unit correlations, 1 / (d + 1))) / 2.

    responses: [S, N] firing rates; positions: [N, 2] mm. The squares and, in squares with
    more than max_units units, the max_units positions used depend only on seed and on the
    set of positions, so a permutation of positions is scored on the same windows.
    Squares with fewer than MIN_WINDOW_UNITS units are skipped; nan if all are.
    """
    return _window_loss(standardize(responses), positions, window_mm, n_windows, seed, max_units)


def _window_loss(z: Tensor, positions: Tensor, width: float, n_windows: int, seed: int,
                 max_units: int) -> float:
    g = torch.Generator().manual_seed(seed)
    pos = positions.to(z.device, torch.float32)
    members, counts = units_in_squares(pos, window_origins(pos, width, n_windows, g), width, max_units, g)
    members = members[counts >= MIN_WINDOW_UNITS]
    if len(members) == 0:
        return math.nan
    k = members.shape[1]
    tri = torch.ones(k, k, dtype=torch.bool, device=z.device).tril(-1)
    losses = []
    for rows in members.split(max(1, _GATHER_ELEMENTS // (k * max(k, z.shape[1])))):
        valid = rows >= 0
        zl = z[rows.clamp_min(0)]
        xy = pos[rows.clamp_min(0)]
        corr = torch.bmm(zl, zl.transpose(1, 2)).double()
        recip = 1.0 / (torch.cdist(xy.double(), xy.double()) + 1.0)
        mask = (tri & valid[:, :, None] & valid[:, None, :]).double()
        losses.append((1.0 - _masked_pearson(corr, recip, mask)) / 2.0)
    return float(torch.cat(losses).mean())


def _masked_pearson(x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Pearson r over the entries where mask [B, ...] is 1, per batch row; 0 where x or y is
    constant there (TDANN's NaN guard)."""
    dims = tuple(range(1, x.dim()))
    m = mask.sum(dims)
    mx, my = (x * mask).sum(dims) / m, (y * mask).sum(dims) / m
    shape = (-1,) + (1,) * len(dims)
    dx, dy = (x - mx.view(shape)) * mask, (y - my.view(shape)) * mask
    den = ((dx * dx).sum(dims) * (dy * dy).sum(dims)).sqrt()
    return torch.where(den > 0, (dx * dy).sum(dims) / den.clamp_min(1e-300), 0.0)


def _pairs(u: Tensor, sizes: Tensor) -> Tensor:
    """Uniforms u [B, steps, 2] -> pairs of distinct local indices [B, steps, 2], uniform
    over each window's sizes[b] units."""
    n = sizes[:, None]
    a = torch.minimum((u[..., 0] * n).long(), n - 1)
    b = torch.minimum((u[..., 1] * (n - 1)).long(), n - 2)
    return torch.stack([a, b + (b >= a).long()], dim=-1)


class _WindowDraws:
    """Uniforms [steps, 2] of each window, drawn from the generator in blocks of windows in
    sequence order, so a window's draws do not depend on which windows share its batch.
    Windows are requested in roughly sequence order; blocks behind ``release`` are freed."""

    def __init__(self, steps: int, generator: torch.Generator, block: int):
        self.steps, self.generator, self.block = steps, generator, block
        self.blocks: dict[int, Tensor] = {}
        self.drawn = 0

    def __call__(self, windows: Tensor) -> Tensor:
        ids = windows.tolist()
        while self.drawn <= max(ids) // self.block:
            self.blocks[self.drawn] = torch.rand((self.block, self.steps, 2), generator=self.generator,
                                                 dtype=torch.float64)
            self.drawn += 1
        return torch.stack([self.blocks[i // self.block][i % self.block] for i in ids])

    def release(self, first_pending: int) -> None:
        for b in [b for b in self.blocks if (b + 1) * self.block <= first_pending]:
            del self.blocks[b]


def _swap_windows(z: Tensor, perm: Tensor, slot_xy: Tensor, slots: Tensor, sizes: Tensor,
                  pairs: Tensor) -> int:
    """Run the attempts ``pairs`` [B, steps, 2] (local indices) in B windows with pairwise
    disjoint slot sets ``slots`` [B, >= max(sizes)] (-1 padded; fastest sorted by decreasing
    size), in lockstep. Updates ``perm`` (slot -> unit) in place; returns the number of
    kept swaps.

    For slots a, b holding units u, v, swapping changes only the cross terms of
    sum(x * y) in the Pearson of the two rows (their sums and sums of squares stay), so the
    loss falls exactly when sum_{j != a, b} (C[v, j] - C[u, j]) (R[a, j] - R[b, j]) > 0,
    with C the correlations of the units in slot order and R = 1 / (d + 1) between slots.
    """
    bsz, n = len(sizes), int(sizes.max())
    device = z.device
    valid = torch.arange(n, device=device) < sizes[:, None]
    slots = slots[:, :n].long().clamp_min(0)
    units = perm[slots]
    # Correlations of the window units, in sub-batches through one reused buffer, each
    # padded only to its own largest window (fast when windows come sorted by size).
    corr = torch.zeros((bsz, n, n), dtype=z.dtype, device=device)
    sub = max(1, _GATHER_ELEMENTS // (n * z.shape[1]))
    buf = z.new_empty((min(sub, bsz) * n, z.shape[1]))
    for i in range(0, bsz, sub):
        m = int(sizes[i:i + sub].max())
        idx = units[i:i + sub, :m].reshape(-1)
        zl = torch.index_select(z, 0, idx, out=buf[:len(idx)]).view(-1, m, z.shape[1])
        corr[i:i + sub, :m, :m] = torch.bmm(zl, zl.transpose(1, 2))
    # 1 / (d + 1) between slots; padding sits at infinity, so valid rows get 0 there (the
    # padding rows, never read, get nan).
    xy = slot_xy[slots].to(z.dtype).masked_fill_(~valid[..., None], math.inf)
    recip = torch.cdist(xy, xy, compute_mode="donot_use_mm_for_euclid_dist").add_(1.0).reciprocal_()
    corr, recip = corr.view(bsz * n, n), recip.view(bsz * n, n)
    base = (torch.arange(bsz, device=device) * n)[:, None]
    local = torch.arange(n, device=device).repeat(bsz, 1)  # slot -> local unit
    kept = torch.zeros(bsz, 1, dtype=torch.long, device=device)
    steps = pairs.transpose(0, 1).contiguous()  # [steps, B, 2] slots a, b
    for ab, rows_ab in zip(steps, (steps + base).view(len(steps), -1)):
        uv = local.gather(1, ab)
        rows = corr.index_select(0, (base + uv).view(-1)).view(bsz, 2, n)
        d_corr = (rows[:, 1] - rows[:, 0]).gather(1, local)
        rows = recip.index_select(0, rows_ab).view(bsz, 2, n)
        d_recip = (rows[:, 0] - rows[:, 1]).scatter_(1, ab, 0.0)
        swap = torch.linalg.vecdot(d_corr, d_recip)[:, None] > 0
        local.scatter_(1, ab, torch.where(swap, uv.flip(1), uv))
        kept += swap
    perm[slots[valid]] = units.gather(1, local)[valid]
    return int(kept.sum())


def swap_optimize(responses: Tensor, positions: Tensor, window_mm: float, n_windows: int,
                  steps_per_window: int = 500, seed: int = 0, progress: bool = True,
                  max_units: int = 500, eval_windows: int = 100) -> SwapResult:
    """TDANN's swap optimization of positions [N, 2] (mm) by responses [S, N] (e.g. firing
    rates to the 640 sine gratings).

    n_windows random squares of side window_mm (TDANN's draw); each is restricted to a random
    subset of max_units units if larger, skipped if it holds fewer than MIN_WINDOW_UNITS,
    and gets steps_per_window attempts. Runs on the device of ``responses``; memory is
    O(S N) plus bounded per-chunk tensors, never N x N. loss_before / loss_after are
    ``window_loss`` on eval_windows squares drawn with seed + 1. Deterministic under seed.
    """
    start = time.perf_counter()
    z = standardize(responses)
    prepared = time.perf_counter() - start
    slot_xy = positions.to(z.device)
    loss_before = _window_loss(z, slot_xy, window_mm, eval_windows, seed + 1, max_units)
    start = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    origins = window_origins(slot_xy.float(), window_mm, n_windows, g)
    members, counts = units_in_squares(slot_xy.float(), origins, window_mm, max_units, g)
    members = members.int()  # [n_windows, <= max_units] slot lists
    draws = _WindowDraws(steps_per_window, g, min(_DRAW_BLOCK, max(1, n_windows)))
    sizes = counts.clamp_max(max_units)
    pending = torch.nonzero(sizes >= MIN_WINDOW_UNITS)[:, 0]
    perm = torch.arange(len(slot_xy), device=z.device)
    accepted = 0
    with tqdm(total=len(pending), desc="swap", unit="window", disable=not progress) as bar:
        while len(pending):
            head, pending = pending[:_LOOKAHEAD], pending[_LOOKAHEAD:]
            o = origins[head]
            overlap = ((o[:, None] - o[None]).abs() <= window_mm).all(-1).tril(-1)
            blocked = overlap.any(1)
            ready, pending = head[~blocked], torch.cat([head[blocked], pending])
            ready = ready[torch.argsort(sizes[ready], descending=True)]  # less padding
            n = int(sizes[ready].max())
            chunk = max(1, _CHUNK_ELEMENTS // (2 * n * n))
            for i in range(0, len(ready), chunk):
                w = ready[i:i + chunk]
                pairs = _pairs(draws(w).to(z.device), sizes[w])
                accepted += _swap_windows(z, perm, slot_xy, members[w], sizes[w], pairs)
            if len(pending):
                draws.release(int(pending[0]))
            bar.update(len(ready))
    attempts = int((sizes >= MIN_WINDOW_UNITS).sum()) * steps_per_window
    out = torch.empty_like(slot_xy)
    out[perm] = slot_xy
    seconds = prepared + time.perf_counter() - start
    loss_after = _window_loss(z, out, window_mm, eval_windows, seed + 1, max_units)
    return SwapResult(out.to(positions.device), loss_before, loss_after, accepted, attempts, seconds)
