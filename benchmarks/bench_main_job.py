"""Wall time of the main job (BENCHMARKS.md): ``harness/score.py --model tsresnet18`` on
the four Fashion-MNIST demo models, every suite, offline, as a new user runs it. Cold
runs start from an empty output folder (nothing cached); the warm run repeats the last
one (everything cached). Target: cold <= 15 min.

    python benchmarks/bench_main_job.py --rounds 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "harness" / "score.py"), "--model", "tsresnet18", "--out", str(out),
                    "--no-progress"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="cold runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cold = [run(Path(tmp) / f"cold{i}") for i in range(args.rounds)]
        warm = run(Path(tmp) / f"cold{args.rounds - 1}")
        suites = json.loads((Path(tmp) / f"cold{args.rounds - 1}" / "results.json").read_text())
    print(f"main job cold: min {min(cold):.0f} s, median {statistics.median(cold):.0f} s over {len(cold)} runs "
          f"(target <= 900 s); warm (all cached): {warm:.1f} s")
    for model in suites["models"]:
        print(f"  {model['name']}: " + ", ".join(f"{s} {r['seconds']:.0f} s" for s, r in model["suites"].items()))


if __name__ == "__main__":
    main()
