"""Training-step cost of the spiking models against their baselines (BENCHMARKS.md).

Measures, at the same width, input size and batch:
  conv floor   = SResNet18 step / (T x ANN ResNet-18 step)      target <= 1.15
  STC overhead = TSResNet18 step / SResNet18 step               target <= 1.10
and the peak RSS of one training step of each model.

A step is forward, the training objective of ``tdsnn-train`` (cross-entropy, + STC for
TSResNet18), backward and an AdamW update. Each model runs in its own subprocess (so peak
RSS is its own); the three run back to back in every round and each ratio is taken within
a round, so machine-speed drift between rounds cancels. Reported: min and median over rounds.

    python benchmarks/bench_train_step.py --rounds 5
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def sgemm_gflops(n: int = 1024, repeats: int = 10) -> float:
    """Machine-speed probe: float32 matmul throughput in GFLOP/s (best of ``repeats``)."""
    import torch
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def report_step_time(step, warmup: int, steps: int) -> None:
    """Run ``step()`` ``warmup`` times, then time ``steps`` calls; print the fastest (s)
    and the process's peak RSS (MB) as one JSON line, read by ``run_worker``."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"step_s": min(times), "peak_rss_mb": peak_mb}))


def step_benchmark_parser(description: str) -> argparse.ArgumentParser:
    """The flags every training-step benchmark shares (rounds, timed and warm-up steps, width,
    batch, STC clusters, and the hidden per-model ``--worker --model M`` mode)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model per round (min is kept)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--clusters", type=int, default=10, help="STC clusters per layer (M)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default=None, help=argparse.SUPPRESS)
    return parser


def worker(args: argparse.Namespace) -> None:
    import torch
    import tdsnn
    from tdsnn.training.objective import Objective

    torch.manual_seed(0)
    overrides = dict(width=args.width, input_size=args.size, num_classes=10, stem=args.stem)
    if args.model != "resnet18":
        overrides["timesteps"] = args.timesteps
    if args.model == "tsresnet18":
        overrides["stc"] = {"clusters_per_layer": args.clusters}
    model = tdsnn.create_model(args.model, **overrides).train()
    objective = Objective(model, topographic=hasattr(model, "sheets"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss, _, _ = objective(x, y, generator)
        loss.backward()
        optimizer.step()

    report_step_time(step, args.warmup, args.steps)


def run_worker(model: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--model", model]
    for key in ("width", "size", "batch", "timesteps", "clusters", "steps", "warmup", "stem"):
        cmd += [f"--{key}", str(getattr(args, key))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = step_benchmark_parser(__doc__)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--timesteps", type=int, default=4)
    parser.add_argument("--stem", default="imagenet")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    rows = []
    for r in range(args.rounds):
        gflops = sgemm_gflops()
        res = {m: run_worker(m, args) for m in ("resnet18", "sresnet18", "tsresnet18")}
        floor = res["sresnet18"]["step_s"] / (args.timesteps * res["resnet18"]["step_s"])
        stc = res["tsresnet18"]["step_s"] / res["sresnet18"]["step_s"]
        rows.append((floor, stc, res, gflops))
        print(f"round {r + 1}: sgemm {gflops:.0f} GFLOP/s | step s: ann {res['resnet18']['step_s']:.3f} "
              f"snn {res['sresnet18']['step_s']:.3f} tsnn {res['tsresnet18']['step_s']:.3f} | "
              f"conv floor {floor:.3f} | STC overhead {stc:.3f}", flush=True)

    def summary(values):
        return f"{min(values):.3f} | {statistics.median(values):.3f}"

    print(f"\nCommand: python benchmarks/bench_train_step.py --rounds {args.rounds} --steps {args.steps} "
          f"--width {args.width} --size {args.size} --batch {args.batch} --timesteps {args.timesteps} "
          f"--clusters {args.clusters} --stem {args.stem}\n")
    print("| metric | min | median | target |\n|---|---|---|---|")
    print(f"| conv floor: SResNet18 / (T x ResNet18) step | {summary([r[0] for r in rows])} | <= 1.15 |")
    print(f"| STC overhead: TSResNet18 / SResNet18 step | {summary([r[1] for r in rows])} | <= 1.10 |")
    for m in ("resnet18", "sresnet18", "tsresnet18"):
        print(f"| {m} step (s) | {summary([r[2][m]['step_s'] for r in rows])} | |")
    for m in ("resnet18", "sresnet18", "tsresnet18"):
        print(f"| {m} peak RSS (MB) | {summary([r[2][m]['peak_rss_mb'] for r in rows])} | |")
    print(f"| sgemm probe (GFLOP/s) | {summary([r[3] for r in rows])} | |")


if __name__ == "__main__":
    main()
