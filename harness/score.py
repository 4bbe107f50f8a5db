"""Score registered models and write comparison tables and figures.

    tdsnn-score (or python harness/score.py) --model tsresnet18 [--compare sresnet18,resnet18,toponet_resnet18]
        [--suites accuracy,topography,robustness,temporal,brainscore] [--out results/<name>]
        [--device cpu|cuda] [--strict] [--weights PATH] [--data SPEC] [--categories DIR]
        [--benchmarks ID,...] [--neural-data DIR ...]

Models resolve through the model registry (``arch`` or ``arch.tag``). Results are
cached under OUT/cache by everything they depend on (the project's code, library
versions, the resolved registry entry, the weights' sha256, the suite's settings and the
version of its data files), so re-running a table recomputes nothing and an interrupted
run resumes at its first unfinished suite; results with unavailable parts are
recomputed, since their data may have arrived. Writes OUT/results.json,
OUT/table.{md,csv,tex}, OUT/figures/*.png and OUT/report.html.

Exit status: 0 done; 1 a checkpoint failed its checks, or --strict and something was
unavailable; 2 bad arguments (invalid or unknown model, suite or benchmark, missing
paths, an --out that cannot be written, counts below 1, unreadable data), reported
before any work except for data found unreadable while it is read.
"""
from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import torch
from tqdm import tqdm

from harness import cache, report
from harness.suites import SUITES, Options, Subject, SuiteResult, Unavailable, suite
from harness.suites.common import evaluation_folder
from harness.suites.result import jsonable
from tdsnn.analysis.robustness import RobustnessConfig
from tdsnn.checkpoint import CheckpointError, WeightsUnavailable
from tdsnn.data import DataError, DataSpec
from tdsnn.names import InvalidName, check_model_name
from tdsnn.registry import UnknownModelError, load_variant, resolve

DEFAULT_COMPARE = "sresnet18,resnet18,toponet_resnet18"
#: Datasets that torchvision downloads into the DIR of ``name:DIR`` (which must exist).
DOWNLOADED = ("fmnist", "cifar100")


class UsageError(ValueError):
    """Bad command-line input (exit status 2)."""


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tsresnet18", help="registered model (arch or arch.tag); default tsresnet18")
    p.add_argument("--compare", default=DEFAULT_COMPARE, help=f"comma-separated models to compare (default "
                   f"{DEFAULT_COMPARE}; '' for none)")
    p.add_argument("--suites", default=",".join(SUITES),
                   help=f"comma-separated suites (default all: {','.join(SUITES)})")
    p.add_argument("--out", type=Path, help="output folder (default results/<model>)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--strict", action="store_true", help="fail (status 1) when anything is unavailable")
    p.add_argument("--weights", help="checkpoint file used for --model instead of its registered weights")
    p.add_argument("--data", help="evaluation data, e.g. fmnist, cifar100:DIR, imagenet-val:/path/to/val "
                   "(default: the data tag of each model's weights)")
    p.add_argument("--limit", type=int, help="accuracy on the first N test images only")
    p.add_argument("--categories", type=Path, help="fLoc-style folders DIR/<category>/*.png for IT selectivity "
                   "(default: test images of each class of the weights' dataset)")
    p.add_argument("--category-images", type=int, default=50, help="test images per class for IT selectivity")
    p.add_argument("--benchmarks", help="comma-separated Brain-Score benchmark ids (default: the TopoNets list)")
    p.add_argument("--neural-data", type=Path, nargs="*", default=[], help="local neural-data packs to score")
    p.add_argument("--robustness-images", type=int, default=500, help="test images attacked per model")
    for field in dataclasses.fields(RobustnessConfig):
        p.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default,
                       help=f"robustness: {field.name} (default {field.default})")
    p.add_argument("--entropy-timesteps", default="1,2,4,8", help="inference T for spike entropy")
    p.add_argument("--fisher-images", type=int, default=64,
                   help="test images for Fisher information over time (temporal suite)")
    p.add_argument("--timestep-images", type=int, default=200,
                   help="test images for accuracy against inference T (temporal suite)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def check_out(out: Path) -> None:
    """``UsageError`` unless ``out`` is a folder this process can write, or can be made one."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a directory")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(f"--out: {existing} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=existing):  # an unnamed file: nothing is left behind
            pass
    except OSError as err:
        raise UsageError(f"--out: cannot write in {existing} ({err.strerror or err})") from err


def check_data(text: str) -> None:
    """``UsageError`` unless ``text`` is a valid data spec whose folder exists."""
    try:
        spec = DataSpec.parse(text)
    except DataError as err:
        raise UsageError(f"--data: {err}") from err
    if spec.path is None or spec.name == "synthetic":
        return
    folder = Path(spec.path) if spec.name in DOWNLOADED else evaluation_folder(text)
    if not folder.is_dir():
        raise UsageError(f"--data: no such directory {folder}")


def options_from(args: argparse.Namespace) -> Options:
    """Validate the paths, names and counts in ``args``; raise ``UsageError`` naming what is wrong."""
    if args.data is not None:
        check_data(args.data)
    if args.categories is not None and not args.categories.is_dir():
        raise UsageError(f"--categories: {args.categories} is not a directory of category folders")
    if args.weights is not None and not Path(args.weights).is_file():
        raise UsageError(f"--weights: no such file {args.weights}")
    for pack in args.neural_data:
        if not pack.is_dir():
            raise UsageError(f"--neural-data: {pack} is not a directory")
    if args.neural_data:
        from harness.neural_pack import PackError, load_pack  # imports brainscore: only when asked
        try:
            for pack in args.neural_data:
                load_pack(pack)
        except PackError as err:
            raise UsageError(f"--neural-data: {err}") from err
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available on this machine")
    for flag in ("batch_size", "limit", "robustness_images", "category_images", "fisher_images", "timestep_images"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')}: expected a positive integer, got {value}")
    try:
        timesteps = tuple(int(t) for t in _names(args.entropy_timesteps))
    except ValueError as err:
        raise UsageError(f"--entropy-timesteps: expected comma-separated integers, "
                         f"got {args.entropy_timesteps!r}") from err
    if not timesteps or min(timesteps) < 1:
        raise UsageError(f"--entropy-timesteps: expected positive integers, got {args.entropy_timesteps!r}")
    try:
        robustness = RobustnessConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(RobustnessConfig)})
    except ValueError as err:
        raise UsageError(f"robustness: {err}") from err
    benchmarks = _names(args.benchmarks) if args.benchmarks else None
    if benchmarks:
        from harness.suites.benchmark_list import check_benchmarks  # imports brainscore: only when asked
        try:
            check_benchmarks(benchmarks)
        except KeyError as err:
            raise UsageError(f"--benchmarks: {err.args[0]}") from err
    return Options(data=args.data, limit=args.limit, categories=args.categories,
                   category_images=args.category_images, benchmarks=benchmarks, neural_data=list(args.neural_data),
                   robustness=robustness, robustness_images=args.robustness_images, entropy_timesteps=timesteps,
                   fisher_images=args.fisher_images, timestep_images=args.timestep_images,
                   batch_size=args.batch_size, strict=args.strict, progress=not args.no_progress)


def load_subject(name: str, weights: Optional[str], device: torch.device) -> Subject:
    entry, model, sha = load_variant(name, weights)
    return Subject(name=entry.name, entry=entry, model=model.to(device).eval(), sha256=sha, device=device,
                   weights=weights)


def run_suite(out: Path, subject: Subject, name: str, options: Options) -> SuiteResult:
    """A suite's result from the cache, else computed (and cached with its wall time)."""
    module = suite(name)
    path = cache.cache_file(out, subject, name, module.settings(subject, options))
    result = cache.load(path, name)
    if result is not None:
        return result
    start = time.perf_counter()
    result = module.run(subject, options)
    result.seconds = time.perf_counter() - start
    cache.store(path, result)
    return result


def describe_weights(subject: Subject) -> str:
    if subject.weights is not None:
        return str(subject.weights)
    return subject.entry.weights.source if subject.entry.weights else "random initialisation (no registered weights)"


def score_model(out: Path, name: str, weights: Optional[str], suites: list[str], options: Options,
                device: torch.device, bar: tqdm) -> dict:
    """The record of one model: identity, then one result per suite (or why none)."""
    entry = resolve(name)
    record = {"name": entry.name, "arch": entry.arch, "data": entry.data,
              "timesteps": entry.config.timesteps, "suites": {}}
    bar.set_description(f"{entry.name}: loading")
    try:
        subject = load_subject(name, weights, device)
    except WeightsUnavailable as err:
        if options.strict:
            raise Unavailable(f"{entry.name}: {err}") from err
        record["unavailable"] = str(err)
        tqdm.write(f"  {entry.name}: unavailable: {err}")
        bar.update(len(suites))
        return record
    record.update(name=subject.name, weights=describe_weights(subject), sha256=subject.sha256,
                  timesteps=subject.model.config.timesteps, config=subject.model.config.to_dict())
    if subject.entry.weights is None and weights is None:
        tqdm.write(f"score.py: {subject.name} has no registered weights; scoring its random initialisation")
    for name_ in suites:
        bar.set_description(f"{subject.name}: {name_}")
        result = run_suite(out, subject, name_, options)
        if options.strict and result.unavailable:
            raise Unavailable(f"{subject.name} {name_}: " + "; ".join(f"{', '.join(keys)}: {why}"
                                                                       for why, keys in result.reasons().items()))
        record["suites"][name_] = result
        tqdm.write(f"  {subject.name} {name_}: " + ("cached" if result.cached else f"{result.seconds:.0f} s")
                   + (f", {len(result.unavailable)} unavailable" if result.unavailable else ""))
        bar.update()
    return record


def command_line(argv: Optional[list[str]]) -> str:
    """How this run was invoked, as a shell command."""
    prog = ["tdsnn-score"] if Path(sys.argv[0]).name == "tdsnn-score" else ["python", "harness/score.py"]
    return shlex.join(prog + list(sys.argv[1:] if argv is None else argv))


def main(argv=None) -> int:
    """The ``tdsnn-score`` command; returns its exit status."""
    args = parse_args(argv)
    try:
        suites = _names(args.suites)
        unknown = [s for s in suites if s not in SUITES]
        if unknown or not suites:
            raise UsageError(f"unknown suite(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(SUITES)}")
        requested = [check_model_name(n) for n in [args.model, *_names(args.compare)]]
        names = list(dict.fromkeys(resolve(n).name for n in requested))
        out = args.out or Path("results") / names[0]
        check_out(out)
        options = options_from(args)
    except (UsageError, UnknownModelError, InvalidName) as err:
        print(f"score.py: {err}", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    started = datetime.now(timezone.utc)
    records = []
    try:
        with tqdm(total=len(names) * len(suites), desc="scoring", unit="suite", disable=not options.progress) as bar:
            for i, name in enumerate(names):
                records.append(score_model(out, name, args.weights if i == 0 else None, suites, options, device, bar))
    except (CheckpointError, Unavailable) as err:
        print(f"score.py: {err}", file=sys.stderr)
        return 1
    except DataError as err:
        print(f"score.py: {err}", file=sys.stderr)
        return 2
    results = {"command": command_line(argv),
               "started": started.isoformat(timespec="seconds"),
               "seconds": (datetime.now(timezone.utc) - started).total_seconds(),
               "device": str(device), "suites": suites, "versions": cache.versions(),
               "code_sha256": cache.code_version(),
               "options": jsonable({**dataclasses.asdict(options), "categories": str(options.categories or ""),
                                     "neural_data": [str(p) for p in options.neural_data]}),
               "models": records}
    paths = report.write(out, results)
    print(f"Table:  {paths['table.md']}\nReport: {paths['report.html']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
