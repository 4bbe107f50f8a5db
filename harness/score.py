"""Score registered models and write comparison tables and figures.

    python harness/score.py --model tsresnet18 [--compare sresnet18,resnet18,toponet_resnet18]
        [--suites accuracy,topography,robustness,temporal,brainscore] [--out results/<name>]
        [--device cpu|cuda] [--strict] [--weights PATH] [--data SPEC] [--categories DIR]
        [--benchmarks ID,...] [--neural-data DIR ...]

Models resolve through model_registry.yaml (``arch`` or ``arch.tag``). Results are
cached per (model, weights sha256, suite, settings, code) under OUT/cache, so re-running a
table recomputes nothing and an interrupted run resumes at its first unfinished suite;
results with unavailable parts are recomputed, since their data may have arrived.
Writes OUT/results.json, OUT/table.{md,csv,tex}, OUT/figures/*.png and OUT/report.html.

Exit status: 0 done; 1 a checkpoint failed its checks, or --strict and something was
unavailable; 2 bad arguments (unknown model, suite or benchmark, missing paths).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import platform
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from tqdm import tqdm

import tdsnn
from harness import report
from harness.suites import SUITES, Options, Subject, Unavailable, suite
from tdsnn.analysis.robustness import RobustnessConfig
from tdsnn.checkpoint import CheckpointError, WeightsUnavailable, atomic_write
from tdsnn.data import DataError, DataSpec
from tdsnn.registry import UnknownModelError, load_variant, resolve

DEFAULT_COMPARE = "sresnet18,resnet18,toponet_resnet18"
VERSIONED_PACKAGES = ("torch", "torchvision", "spikingjelly", "brainscore-vision", "topoloss", "numpy", "xarray",
                      "pandas")


class UsageError(ValueError):
    """Bad command-line input (exit status 2)."""


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tsresnet18", help="registered model (arch or arch.tag); default tsresnet18")
    p.add_argument("--compare", default=DEFAULT_COMPARE, help=f"comma-separated models to compare (default "
                   f"{DEFAULT_COMPARE}; '' for none)")
    p.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated suites (default all: {','.join(SUITES)})")
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
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def options_from(args: argparse.Namespace) -> Options:
    """Validate the paths and names in ``args``; raise ``UsageError`` naming what is wrong."""
    if args.data is not None:
        try:
            DataSpec.parse(args.data)
        except DataError as err:
            raise UsageError(f"--data: {err}") from err
    if args.categories is not None and not args.categories.is_dir():
        raise UsageError(f"--categories: {args.categories} is not a directory of category folders")
    if args.weights is not None and not Path(args.weights).is_file():
        raise UsageError(f"--weights: no such file {args.weights}")
    for pack in args.neural_data:
        if not pack.is_dir():
            raise UsageError(f"--neural-data: {pack} is not a directory")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available on this machine")
    try:
        timesteps = tuple(int(t) for t in _names(args.entropy_timesteps))
    except ValueError as err:
        raise UsageError(f"--entropy-timesteps: expected comma-separated integers, got {args.entropy_timesteps!r}") from err
    robustness = RobustnessConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(RobustnessConfig)})
    benchmarks = _names(args.benchmarks) if args.benchmarks else None
    if benchmarks:
        from harness.suites.brainscore import check_benchmarks  # imports brainscore: only when asked
        try:
            check_benchmarks(benchmarks)
        except KeyError as err:
            raise UsageError(f"--benchmarks: {err.args[0]}") from err
    return Options(data=args.data, limit=args.limit, categories=args.categories,
                   category_images=args.category_images, benchmarks=benchmarks, neural_data=list(args.neural_data),
                   robustness=robustness, robustness_images=args.robustness_images, entropy_timesteps=timesteps,
                   batch_size=args.batch_size, strict=args.strict, progress=not args.no_progress)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "tdsnn": tdsnn.__version__}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def load_subject(name: str, weights: Optional[str], device: torch.device) -> Subject:
    entry, model, sha = load_variant(name, weights)
    return Subject(name=entry.name, entry=entry, model=model.to(device).eval(), sha256=sha, device=device,
                   weights=weights)


def _jsonable(value: Any) -> Any:
    """numpy/torch values -> JSON types; NaN and inf -> None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """sha256 of the tdsnn and harness sources, so that cached results never outlive the code
    that computed them."""
    digest = hashlib.sha256()
    for package in (Path(tdsnn.__file__).parent, Path(__file__).parent):
        for path in sorted(package.rglob("*.py")):
            digest.update(path.relative_to(package.parent).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def cache_file(out: Path, subject: Subject, name: str, settings: dict) -> Path:
    key = json.dumps({"model": subject.name, "weights": subject.sha256, "suite": name, "settings": settings,
                      "code": code_version()}, sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return out / "cache" / f"{subject.name}-{subject.sha256[:8]}" / f"{name}-{digest}.json"


def run_suite(out: Path, subject: Subject, name: str, options: Options) -> dict:
    """A suite's result from the cache, else computed (and cached with its wall time)."""
    module = suite(name)
    path = cache_file(out, subject, name, module.settings(subject, options))
    if path.exists():
        try:
            cached = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            cached = None  # unreadable: computed again
        if cached is not None and not cached.get("unavailable", True):
            return {**cached, "cached": True}
    start = time.perf_counter()
    result = module.run(subject, options)
    result = {"metrics": {}, "unavailable": {}, "details": {}, "arrays": {}, **result,
              "seconds": time.perf_counter() - start}
    result = _jsonable(result)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(result)))
    return {**result, "cached": False}


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
        if options.strict and result["unavailable"]:
            raise Unavailable(f"{subject.name} {name_}: " + "; ".join(f"{k}: {v}" for k, v in result["unavailable"].items()))
        record["suites"][name_] = result
        tqdm.write(f"  {subject.name} {name_}: " + ("cached" if result["cached"] else f"{result['seconds']:.0f} s")
                   + (f", {len(result['unavailable'])} unavailable" if result["unavailable"] else ""))
        bar.update()
    return record


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        suites = _names(args.suites)
        unknown = [s for s in suites if s not in SUITES]
        if unknown or not suites:
            raise UsageError(f"unknown suite(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(SUITES)}")
        names = list(dict.fromkeys([resolve(args.model).name] + [resolve(n).name for n in _names(args.compare)]))
        options = options_from(args)
    except (UsageError, UnknownModelError) as err:
        print(f"score.py: {err}", file=sys.stderr)
        return 2
    out = args.out or Path("results") / names[0]
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
    results = {"command": "python harness/score.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "started": started.isoformat(timespec="seconds"),
               "seconds": (datetime.now(timezone.utc) - started).total_seconds(),
               "device": str(device), "suites": suites, "versions": versions(), "code_sha256": code_version(),
               "options": _jsonable({**dataclasses.asdict(options), "categories": str(options.categories or ""),
                                     "neural_data": [str(p) for p in options.neural_data]}),
               "models": records}
    paths = report.write(out, results)
    print(f"Table:  {paths['table.md']}\nReport: {paths['report.html']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
