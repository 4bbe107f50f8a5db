"""Brain-Score extraction cost of the plugin (BENCHMARKS.md).

1. Throughput (images/s) of TSResNet18 at 224 px, T = 4: the plugin's full
   ``look_at`` path (image loading, preprocessing, stepwise forward, rate hooks,
   packaging) against a bare ``model(x)`` forward over the same images, alternating
   within each round. Target: the plugin adds <= 10 %.
2. Peak RSS of the ``look_at`` path at T = 4 vs T = 16, batch 16, 224 px, each in its
   own subprocess. Target: <= 1.2x (rates are aggregated on the fly).

    python benchmarks/bench_extraction.py --rounds 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("RESULTCACHING_DISABLE", "1")
os.environ.setdefault("BRAINSCORE_SKIP_MEMORY_CHECK", "1")


def make_stimuli(n: int, size: int, directory: str):
    import numpy as np
    import pandas as pd
    from PIL import Image
    from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet

    rng = np.random.default_rng(0)
    paths = {}
    for i in range(n):
        path = os.path.join(directory, f"im{i}.png")
        Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(path)
        paths[f"im{i}"] = path
    stimuli = StimulusSet(pd.DataFrame({"stimulus_id": list(paths), "object_name": ["o"] * n}))
    stimuli.stimulus_paths = paths
    stimuli.identifier = f"bench.random{n}"
    return stimuli


def commitment(timesteps: int, batch: int, directory: str):
    import torch
    import tdsnn
    from tdsnn.checkpoint import save_model
    from brainscore_plugin.commitment import brain_model

    torch.manual_seed(0)
    model = tdsnn.create_model("tsresnet18", timesteps=timesteps)
    for m in model.modules():  # an untrained net is silent in eval mode; make it fire
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.fill_(2.0)
            m.bias.data.fill_(0.6)
    path = os.path.join(directory, f"tsresnet18-T{timesteps}.safetensors")
    save_model(model, path)
    bm = brain_model("tsresnet18", weights=path, batch_size=batch)
    bm.start_recording("IT", [(70, 170)])
    return bm


def throughput(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        stimuli = make_stimuli(args.images, 224, tmp)
        bm = commitment(4, args.batch, tmp)
        model = bm.activations_model.model.eval()
        x = torch.as_tensor(bm.activations_model._extractor.preprocess(list(stimuli.stimulus_paths.values())))
        bm.look_at(stimuli)  # warm-up
        rows = []
        for r in range(args.rounds):
            t = time.perf_counter()
            with torch.no_grad():
                for i in range(0, len(x), args.batch):
                    model(x[i:i + args.batch])
            bare = len(x) / (time.perf_counter() - t)
            t = time.perf_counter()
            bm.look_at(stimuli)
            plugin = len(x) / (time.perf_counter() - t)
            rows.append((bare, plugin))
            print(f"round {r + 1}: bare forward {bare:.2f} img/s | plugin look_at {plugin:.2f} img/s | "
                  f"overhead {bare / plugin - 1:+.1%}", flush=True)
    overheads = [b / p - 1 for b, p in rows]
    print(f"\n| metric | min | median | target |\n|---|---|---|---|")
    print(f"| bare `model(x)` (img/s) | {min(r[0] for r in rows):.2f} | {statistics.median(r[0] for r in rows):.2f} | |")
    print(f"| plugin `look_at` (img/s) | {min(r[1] for r in rows):.2f} | {statistics.median(r[1] for r in rows):.2f} | |")
    print(f"| plugin overhead | {min(overheads):+.1%} | {statistics.median(overheads):+.1%} | <= +10% |")


def memory_worker(args) -> None:
    """Peak RSS while ``look_at`` runs, sampled every 2 ms (building the model peaks on its
    own, so the process-wide maximum would not show the extraction)."""
    import gc
    import threading

    import psutil
    import torch

    torch.set_num_threads(args.threads)
    process = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        stimuli = make_stimuli(args.batch, 224, tmp)
        bm = commitment(args.timesteps, args.batch, tmp)
        gc.collect()
        before = process.memory_info().rss / 2 ** 20
        peak, done = [before], threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], process.memory_info().rss / 2 ** 20)
                time.sleep(0.002)

        sampler = threading.Thread(target=sample)
        sampler.start()
        bm.look_at(stimuli)
        done.set()
        sampler.join()
    print(json.dumps({"before_mb": before, "peak_mb": peak[0]}))


def memory(args) -> None:
    results = {}
    for timesteps in (4, 16):
        cmd = [sys.executable, __file__, "--memory-worker", "--timesteps", str(timesteps),
               "--batch", str(args.batch), "--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[timesteps] = json.loads(out.strip().splitlines()[-1])
        print(f"T={timesteps}: peak RSS during look_at {results[timesteps]['peak_mb']:.0f} MB, "
              f"{results[timesteps]['peak_mb'] - results[timesteps]['before_mb']:.0f} MB above the RSS "
              f"before it ({results[timesteps]['before_mb']:.0f} MB)", flush=True)
    peak = {t: r["peak_mb"] for t, r in results.items()}
    growth = {t: r["peak_mb"] - r["before_mb"] for t, r in results.items()}
    print(f"\n| metric ({args.batch} images at 224 px) | T=4 | T=16 | T=16 / T=4 | target |\n|---|---|---|---|---|")
    print(f"| peak RSS during look_at (MB) | {peak[4]:.0f} | {peak[16]:.0f} | {peak[16] / peak[4]:.3f} | <= 1.2 |")
    print(f"| look_at RSS growth (MB) | {growth[4]:.0f} | {growth[16]:.0f} | {growth[16] / growth[4]:.3f} | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--timesteps", type=int, default=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_worker:
        memory_worker(args)
        return
    print(f"Command: python benchmarks/bench_extraction.py --rounds {args.rounds} --images {args.images} "
          f"--batch {args.batch} --threads {args.threads}\n")
    throughput(args)
    if not args.skip_memory:
        print()
        memory(args)


if __name__ == "__main__":
    main()
