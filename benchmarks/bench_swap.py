"""Swap optimization speed: a sequential TDANN-style numpy loop vs ``tdsnn.swap.swap_optimize``.

Both run the same number of windows x attempts on the same synthetic V1-like sheet
(retinotopic positions on the 36.75 mm V1 sheet, structured responses to S stimuli that are
smooth functions of a hidden map position, positions initially shuffled against that map)
and are scored with ``tdsnn.swap.window_loss`` on the same evaluation windows. Prints a
markdown table; writes nothing.

The baseline follows TDANN's ``swap_optimize_neighborhoods`` / ``swap_optimize_positions``:
one window at a time (np.corrcoef of its units, NaN -> 0), one random pair at a time, loss
(1 - Pearson(corr rows, 1 / (d + 1))) / 2 before and after the swap. ``--baseline lean``
(default) computes distance and Pearson in lean numpy, which is several times faster than
TDANN's own calls; ``--baseline tdann`` uses TDANN's calls (rng.choice(np.arange(n)),
scipy cdist and pearsonr).

    python benchmarks/bench_swap.py --repeats 3 --units 128x28x28,128x16x16
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--units", default="128x28x28,128x16x16",
                   help="comma-separated CxHxW sheet sizes (V1 area)")
    p.add_argument("--stimuli", type=int, default=640, help="S, stimuli per unit")
    p.add_argument("--windows", type=int, default=1000, help="windows per run (both methods)")
    p.add_argument("--steps", type=int, default=500, help="attempts per window")
    p.add_argument("--eval-windows", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3, help="runs per size, seeds 0..repeats-1")
    p.add_argument("--threads", type=int, default=1, help="BLAS / torch threads for both methods")
    p.add_argument("--baseline", choices=("lean", "tdann"), default="lean",
                   help="numpy loss of the sequential loop: lean, or TDANN's scipy calls")
    return p.parse_args()


ARGS = parse_args()
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.spatial.distance import cdist  # noqa: E402
from scipy.stats import pearsonr  # noqa: E402

from tdsnn.sheets import AREAS, retinotopic_positions  # noqa: E402
from tdsnn.swap import MIN_WINDOW_UNITS, swap_optimize, window_loss  # noqa: E402

V1 = AREAS["V1"]
MAX_UNITS = 500


def synthetic_sheet(dims: tuple[int, int, int], stimuli: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Responses [S, N] (rectified, noisy plane waves over a hidden 2-D map position, period
    ~2.5 windows) and retinotopic V1 positions [N, 2] mm shuffled against the hidden map."""
    g = torch.Generator().manual_seed(seed)
    positions = retinotopic_positions(dims, V1.side_mm, 2 * dims[1], 0.3, g)
    hidden = positions[torch.randperm(len(positions), generator=g)].double()
    k = torch.randn(stimuli, 2, generator=g, dtype=torch.float64)
    k = k / k.norm(dim=1, keepdim=True) * (2 * math.pi / (2.5 * V1.cluster_width_mm))
    phase = 2 * math.pi * torch.rand(stimuli, 1, generator=g, dtype=torch.float64)
    noise = 0.5 * torch.randn(stimuli, len(positions), generator=g, dtype=torch.float64)
    responses = (torch.cos(k @ hidden.T + phase) + noise).clamp_min(0)
    return responses.float(), positions


def lean_pair_loss(corr_rows: np.ndarray, pos: np.ndarray, pair: np.ndarray) -> float:
    d = np.sqrt(((pos[pair][:, None, :] - pos[None, :, :]) ** 2).sum(-1))
    x = corr_rows.ravel() - corr_rows.mean()
    y = 1.0 / (d.ravel() + 1.0)
    y = y - y.mean()
    return (1.0 - (x @ y) / math.sqrt((x @ x) * (y @ y))) / 2.0


def tdann_pair_loss(corr_rows: np.ndarray, pos: np.ndarray, pair: np.ndarray) -> float:
    return (1.0 - pearsonr(corr_rows.ravel(), 1.0 / (cdist(pos[pair], pos).ravel() + 1.0))[0]) / 2.0


def tdann_sequential(features: np.ndarray, positions: np.ndarray, width: float, n_windows: int,
                     steps: int, seed: int, baseline: str) -> tuple[np.ndarray, int, int]:
    """TDANN-style loop. features [S, N], positions [N, 2]. Returns positions, kept, attempts."""
    rng = np.random.default_rng(seed)
    pair_loss = lean_pair_loss if baseline == "lean" else tdann_pair_loss
    positions = positions.copy()
    lo, hi = positions.min(0), positions.max(0) - width
    kept = attempts = 0
    for _ in range(n_windows):
        x0, y0 = rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1])
        idx = np.where((positions[:, 0] >= x0) & (positions[:, 0] <= x0 + width)
                       & (positions[:, 1] >= y0) & (positions[:, 1] <= y0 + width))[0]
        if len(idx) < MIN_WINDOW_UNITS:
            continue
        if len(idx) > MAX_UNITS:
            idx = rng.choice(idx, size=MAX_UNITS, replace=False)
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.nan_to_num(np.corrcoef(features[:, idx].T), nan=0.0)
        pos = positions[idx]
        population = np.arange(len(idx))
        for _ in range(steps):
            pair = rng.choice(len(idx) if baseline == "lean" else population, size=2, replace=False)
            before = pair_loss(corr[pair], pos, pair)
            pos[pair] = pos[pair[::-1]]
            if pair_loss(corr[pair], pos, pair) >= before:
                pos[pair] = pos[pair[::-1]]
            else:
                kept += 1
        positions[idx] = pos
        attempts += steps
    return positions, kept, attempts


def main() -> None:
    torch.set_num_threads(ARGS.threads)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    print(f"command: `{command}`  (torch {torch.__version__}, numpy {np.__version__}, "
          f"{ARGS.threads} thread(s), {ARGS.windows} windows x {ARGS.steps} attempts per run, "
          f"baseline: {ARGS.baseline})\n")
    print("| sheet (CxHxW) | units/window | seed | loss before | TDANN loop: loss after | ours: loss after "
          "| TDANN loop attempts/s | ours attempts/s | speedup |")
    print("|---|---|---|---|---|---|---|---|---|")
    summary = []
    for spec in ARGS.units.split(","):
        dims = tuple(int(v) for v in spec.lower().split("x"))
        ratios = []
        for seed in range(ARGS.repeats):
            responses, positions = synthetic_sheet(dims, ARGS.stimuli, seed)
            per_window = len(positions) * (V1.cluster_width_mm / (positions.amax(0) - positions.amin(0))).prod()

            t = time.perf_counter()
            base_pos, _, base_attempts = tdann_sequential(
                responses.double().numpy(), positions.double().numpy(), V1.cluster_width_mm,
                ARGS.windows, ARGS.steps, seed, ARGS.baseline)
            base_rate = base_attempts / (time.perf_counter() - t)

            ours = swap_optimize(responses, positions, V1.cluster_width_mm, ARGS.windows, ARGS.steps,
                                 seed=seed, progress=False, eval_windows=ARGS.eval_windows)
            # ours.seconds covers standardization + swapping, not the two evaluations.
            our_rate = ours.attempts / ours.seconds
            eval_seed = seed + 1  # the evaluation windows swap_optimize used
            base_loss = window_loss(responses, torch.from_numpy(base_pos).float(), V1.cluster_width_mm,
                                    ARGS.eval_windows, eval_seed)
            ratios.append(our_rate / base_rate)
            print(f"| {spec} | {float(per_window):.0f} | {seed} | {ours.loss_before:.4f} | {base_loss:.4f} "
                  f"| {ours.loss_after:.4f} | {base_rate:,.0f} | {our_rate:,.0f} | {ratios[-1]:.1f}x |",
                  flush=True)
        summary.append((spec, min(ratios), statistics.median(ratios)))
    print("\n| sheet (CxHxW) | speedup min | speedup median |")
    print("|---|---|---|")
    for spec, lo, med in summary:
        print(f"| {spec} | {lo:.1f}x | {med:.1f}x |")


if __name__ == "__main__":
    main()
