"""Training-step cost of the CORnet and Spikformer families (BENCHMARKS.md).

Measures, at the same width, input size and batch within each family:
  STC overhead   = TSCornet step / SCornet step                      target <= 1.10
  STC overhead   = TSpikformer step / Spikformer step                target <= 1.10
  CORnet floor   = SCornet step at T = 10 / (10 x ANN CORnet step)   target <= 1.15
and the peak RSS of one training step of each model.

The ANN CORnet step is the same network (SCornet's modules, the same shapes) run as a
non-spiking ANN for one timestep: each area's input conv, norm and ReLU, then its
recurrent conv, norm and ReLU on that input (no state yet), then the readout. A step is
forward, the training objective of ``tdsnn-train`` (cross-entropy, + STC for the
topographic models), backward and an AdamW update. Each model runs in its own subprocess
(so peak RSS is its own); all five run back to back in every round and each ratio is taken
within a round, so machine-speed drift between rounds cancels. Reported: min and median
over rounds.

Shapes: CORnet at T = 10 with the ``imagenet`` stem (7x7/4) on ``--cornet-size`` px;
Spikformer-4-384 at T = 4 with the ``small`` stem (patch 4, spikingjelly's CIFAR
configuration) on ``--spikformer-size`` px. Sheets sample ``--sheet-clusters`` candidate
windows (the STC step cost depends on M and the cluster size, not on the pool size).

    python benchmarks/bench_new_archs.py --rounds 5
    python benchmarks/bench_new_archs.py --quick      # a smoke run: tiny widths, one round
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from bench_train_step import report_step_time, step_benchmark_parser

#: Models in the order they run in a round; ``scornet_ann`` is SCornet run as a one-step ANN.
MODELS = ("scornet_ann", "scornet", "tscornet", "spikformer", "tspikformer")
CORNET_T = 10
SPIKFORMER_T = 4
#: Options of ``--quick``: tiny widths and sizes, one round of one timed step.
QUICK = dict(rounds=1, steps=1, warmup=1, width=0.25, batch=4, cornet_size=32, spikformer_size=32, sheet_clusters=300)


def ann_cornet_step(model, x):
    """Logits ``[B, classes]`` of SCornet ``model`` run as a non-spiking ANN for one timestep."""
    import torch.nn.functional as F
    from tdsnn.regions import REGIONS

    h = x
    for region in REGIONS:
        area = getattr(model, region)
        h = F.relu(area.norm_input(area.conv_input(h)))
        h = F.relu(area.norm1(area.conv1(h)))
    return model.fc(h.mean(dim=(2, 3)))


def worker(args: argparse.Namespace) -> None:
    import torch
    import tdsnn
    from tdsnn.training.objective import Objective

    torch.manual_seed(0)
    arch = "scornet" if args.model == "scornet_ann" else args.model
    cornet = arch.endswith("cornet")
    size = args.cornet_size if cornet else args.spikformer_size
    overrides = dict(width=args.width, input_size=size, num_classes=10, stem="imagenet" if cornet else "small",
                     timesteps=CORNET_T if cornet else SPIKFORMER_T)
    if arch.startswith("t"):
        overrides["sheet"] = {"n_clusters": args.sheet_clusters}
        overrides["stc"] = {"clusters_per_layer": args.clusters}
    model = tdsnn.create_model(arch, **overrides).train()
    objective = Objective(model, topographic=hasattr(model, "sheets"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(args.batch, 3, size, size)
    y = torch.randint(0, 10, (args.batch,))
    generator = torch.Generator().manual_seed(0)

    def loss() -> torch.Tensor:
        if args.model == "scornet_ann":
            return torch.nn.functional.cross_entropy(ann_cornet_step(model, x), y)
        return objective(x, y, generator)[0]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss().backward()
        optimizer.step()

    report_step_time(step, args.warmup, args.steps)


FORWARDED = ("width", "cornet_size", "spikformer_size", "batch", "clusters", "sheet_clusters", "steps", "warmup")


def run_worker(model: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--model", model]
    for key in FORWARDED:
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def ratios(res: dict) -> dict[str, float]:
    """The three ratios of one round."""
    return {"stc_cornet": res["tscornet"]["step_s"] / res["scornet"]["step_s"],
            "stc_spikformer": res["tspikformer"]["step_s"] / res["spikformer"]["step_s"],
            "cornet_floor": res["scornet"]["step_s"] / (CORNET_T * res["scornet_ann"]["step_s"])}


def main() -> None:
    parser = step_benchmark_parser(__doc__)
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK} (overrides those flags)")
    parser.add_argument("--cornet-size", type=int, default=64, help="CORnet input side (px)")
    parser.add_argument("--spikformer-size", type=int, default=32, help="Spikformer input side (px, multiple of 4)")
    parser.add_argument("--sheet-clusters", type=int, default=2000, help="candidate windows per sheet")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.quick:
        vars(args).update(QUICK)

    rows = []
    for r in range(args.rounds):
        res = {m: run_worker(m, args) for m in MODELS}
        rows.append((ratios(res), res))
        steps = " ".join(f"{m} {res[m]['step_s']:.3f}" for m in MODELS)
        print(f"round {r + 1}: step s: {steps} | " + " ".join(f"{k} {v:.3f}" for k, v in rows[-1][0].items()),
              flush=True)

    def summary(values):
        return f"{min(values):.3f} | {statistics.median(values):.3f}"

    flags = " ".join(f"--{k.replace('_', '-')} {getattr(args, k)}" for k in ("rounds", *FORWARDED))
    print(f"\nCommand: python benchmarks/bench_new_archs.py {flags}\n")
    print("| metric | min | median | target |\n|---|---|---|---|")
    print(f"| STC overhead: TSCornet / SCornet step | {summary([r[0]['stc_cornet'] for r in rows])} | <= 1.10 |")
    print(f"| STC overhead: TSpikformer / Spikformer step | {summary([r[0]['stc_spikformer'] for r in rows])} "
          "| <= 1.10 |")
    print(f"| CORnet floor: SCornet (T = 10) / (10 x ANN CORnet) step | "
          f"{summary([r[0]['cornet_floor'] for r in rows])} | <= 1.15 |")
    for m in MODELS:
        print(f"| {m} step (s) | {summary([r[1][m]['step_s'] for r in rows])} | |")
    for m in MODELS:
        print(f"| {m} peak RSS (MB) | {summary([r[1][m]['peak_rss_mb'] for r in rows])} | |")


if __name__ == "__main__":
    main()
