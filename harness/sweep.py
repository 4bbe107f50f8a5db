"""tdsnn-sweep: train model families over a grid of loss strengths, register and score
every point, and write the accuracy–topography trade-off (the paper's Fig. 5).

    tdsnn-sweep configs/sweeps/fmnist.yaml [--runs DIR] [--device auto|cpu|cuda] [--workers N]
        [--max-points N] [--git-commit] [--train-only] [--dry-run]
    torchrun --nproc_per_node 8 -m harness.sweep configs/sweeps/imagenet.yaml

The sweep file (``harness.sweep_config``) names the families, strengths and seeds. Point
after point (non-topographic families first), the command
1. trains it with the ``tdsnn-train`` pipeline into ``RUNS/<arch>.<tag>`` (default RUNS:
   ``runs/sweeps/<sweep>``), always with ``--resume``, so an interrupted point continues
   from its last checkpoint; a point with ``aux`` takes that baseline's registered weights
   as ``--aux-weights``;
2. registers it as ``<arch>.<sweep>-<point>`` in the registry in use, marked with the sweep;
3. scores accuracy, V1 orientation smoothness and IT category smoothness through the
   harness suites (cached in ``RUNS/score``);
4. rewrites ``tradeoff.json``, ``tradeoff.md`` and ``tradeoff.png`` (``harness.tradeoff``)
   in ``sweeps/<sweep>/`` beside the registry;
5. with ``--git-commit``, commits exactly the registry, the point's weights and card, and
   the three trade-off files, so an interruption loses at most the point in progress.

A point is done when the registry holds its variant, marked with this sweep, with the
weights ``tradeoff.json`` records for the same options (for a point with ``aux``: the
same auxiliary weights). Re-running continues at the first point not done; re-running a
finished sweep trains and registers nothing and leaves every file as it was. Under
torchrun every point trains in one process group; rank 0 registers, scores and writes
while the other ranks wait.

Points train in parallel with ``--train-only`` beside the sweep (on another core, or on
another machine sharing RUNS): it trains the points that are not done and that no other
process is training (each run folder is locked while it trains), and registers nothing.
The sweep puts off a point another process is training, goes on with the next, and
registers and commits the put-off point once that process is done.

Exit status: 0 done (or stopped after --max-points); 1 a git command failed; 2 bad input
(reported before any work) or a run the pipeline refuses; 3 a loss or weight became
non-finite (continue that point with ``tdsnn-train --config RUNS/<point>/config.yaml
--resume --resume-lr X``, then run the sweep again).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shlex
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.distributed as dist
import yaml

from harness import tradeoff
from harness.commit import GitError, commit, repository
from harness.score import load_subject, run_suite
from harness.suites import Options, keys
from harness.sweep_config import Point, Sweep, SweepError, load_sweep
from harness.tradeoff_figure import sweep_folder
from tdsnn import registry
from tdsnn.checkpoint import CheckpointError, atomic_write
from tdsnn.data import DataError
from tdsnn.names import InvalidName
from tdsnn.registration import register, registry_text
from tdsnn.training.config import VOLATILE, ConfigError, TrainConfig, config_hash
from tdsnn.training.loop import NonFiniteLoss
from tdsnn.training.pipeline import train_pipeline
from tdsnn.training.run_lock import RunInUse
from tdsnn.training.runtime import Runtime, session

#: How long the other ranks wait for rank 0 to register and score a point.
RANK0_TIMEOUT = timedelta(hours=6)
SUITES = ("accuracy", "topography")
ORIENTATION = keys.V1_SMOOTHNESS["orientation"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tdsnn-sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path, help="sweep file (e.g. configs/sweeps/fmnist.yaml)")
    p.add_argument("--runs", type=Path, help="folder of the points' training runs (default runs/sweeps/<sweep>)")
    p.add_argument("--device", help="training and scoring device: auto, cpu, cuda or cuda:N (default: the "
                                    "sweep file's)")
    p.add_argument("--workers", help="data-loader processes (default: the sweep file's)")
    p.add_argument("--max-points", type=int, help="train at most N points not yet done, then stop")
    p.add_argument("--git-commit", action="store_true", help="commit each finished point (registry entry, "
                                                             "weights, card and trade-off files)")
    p.add_argument("--train-only", action="store_true",
                   help="only train the points not done that no other process is training (beside a sweep "
                        "run on another core or machine, which registers and scores them)")
    p.add_argument("--dry-run", action="store_true", help="list the points and which are done; change nothing")
    return p.parse_args(argv)


class Ranks:
    """Rank 0's results shared with every process, over a gloo group whose timeout allows
    rank 0 to register and score a point while the others wait."""

    def __init__(self, rt: Runtime):
        self.rt = rt
        self.group = dist.new_group(backend="gloo", timeout=RANK0_TIMEOUT) if rt.world > 1 else None

    def share(self, compute: Callable[[], Any]) -> Any:
        """``compute()`` on rank 0, its value on every rank; its error, raised on every rank."""
        outcome: list[Any] = [None]
        if self.rt.main:
            try:
                outcome = [("ok", compute())]
            except Exception as err:  # shared so that no rank waits for a value that never comes
                outcome = [("error", err)]
        if self.group is not None:
            dist.broadcast_object_list(outcome, src=0, group=self.group)
        status, value = outcome[0]
        if status == "error":
            raise value
        return value


# ----------------------------------------------------------------------------- points

def aux_sha256(point: Point) -> Optional[str]:
    """The registered sha256 of the point's auxiliary weights (None: no aux, or not registered)."""
    if point.aux is None:
        return None
    try:
        entry = registry.resolve(point.aux)
    except registry.UnknownModelError:
        return None
    return entry.weights.sha256 if entry.weights is not None else None


def run_options(cfg: TrainConfig) -> dict[str, Any]:
    """The options that decide what a point's run computes: all but the volatile ones and
    the location of the auxiliary weights."""
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in (*VOLATILE, "aux_weights")}


def point_key(point: Point) -> str:
    """What a point's result depends on: its ``run_options`` and the sha256 of its auxiliary weights."""
    return config_hash({**run_options(point.cfg), "aux_sha256": aux_sha256(point)})


def is_done(point: Point, sweep: Sweep, previous: dict[str, dict]) -> bool:
    """Whether the registry holds the point's variant, marked with ``sweep``, with weights
    on disk whose sha256 the earlier ``tradeoff.json`` records for the same key."""
    record = previous.get(point.name)
    if record is None or (point.aux is not None and aux_sha256(point) is None):
        return False
    try:
        entry = registry.resolve(point.name)
    except registry.UnknownModelError:
        return False
    return (entry.sweep == sweep.name and entry.weights is not None and entry.weights.path is not None
            and registry.weights_file(entry).is_file() and entry.weights.sha256 == record.get("weights_sha256")
            and record.get("key") == point_key(point))


def done_points(sweep: Sweep, previous: dict[str, dict]) -> list[bool]:
    """Which points of ``sweep`` are done: ``is_done``, and for a point with ``aux``, that
    point is done too (``previous``: the records of the earlier ``tradeoff.json``)."""
    done: dict[str, bool] = {}
    for point in sweep.points:
        done[point.name] = is_done(point, sweep, previous) and (point.aux is None or done.get(point.aux, False))
    return list(done.values())


def check_runs(sweep: Sweep) -> None:
    """``SweepError`` for a point whose run folder was started with other options (its
    pipeline would refuse it), before any work."""
    for point in sweep.points:
        recorded = Path(point.cfg.out) / "config.yaml"
        if not recorded.is_file():
            continue
        try:
            earlier = TrainConfig(**yaml.safe_load(recorded.read_text()))
        except (OSError, yaml.YAMLError, TypeError, ConfigError) as err:
            raise SweepError(f"{recorded}: unreadable run record ({err}); remove {point.cfg.out}") from err
        if run_options(earlier) != run_options(point.cfg):
            raise SweepError(f"{point.cfg.out} was trained with other options than {point.name} now has; remove "
                             "it (or choose another --runs) to train the point again")


def training_record(point: Point, earlier: Optional[dict]) -> Optional[dict]:
    """Epochs, seconds and per-epoch train accuracy of the point's train stage, and the gain
    of train accuracy over the last quarter of its epochs (a plateau check that does not
    look at the test split); the earlier record when the run folder is gone."""
    metrics = Path(point.cfg.out) / "train" / "metrics.jsonl"
    if not metrics.is_file():
        return (earlier or {}).get("training")
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    train_acc = [row.get("train_acc") for row in rows]
    back = max(1, len(rows) // 4)
    gain = train_acc[-1] - train_acc[-1 - back] if len(rows) > back and None not in train_acc else None
    return {"epochs": len(rows), "seconds": sum(row.get("seconds", 0.0) for row in rows),
            "train_acc": train_acc, "late_gain": gain}


def score(point: Point, runs: Path, device: str) -> tuple[dict[str, Optional[float]], str]:
    """Accuracy, V1 orientation and IT category smoothness (each with its SEM where the suite
    measured one) and their chance levels of the registered point (harness suites, cached in
    ``runs/score``), and the sha256 of the weights scored."""
    subject = load_subject(point.name, None, torch.device(device))
    options = Options(progress=False)
    results = {name: run_suite(runs / "score", subject, name, options) for name in SUITES}
    topography = results["topography"]
    cells = {"accuracy": results["accuracy"].cell(keys.ACCURACY),
             "v1_orientation_smoothness": topography.cell(ORIENTATION),
             "v1_orientation_smoothness_chance": topography.cell(keys.V1_SMOOTHNESS_CHANCE["orientation"]),
             "it_category_smoothness": topography.cell(keys.IT_CATEGORY_SMOOTHNESS),
             "it_category_smoothness_chance": topography.cell(keys.IT_CATEGORY_SMOOTHNESS_CHANCE)}
    scores = {}
    for name, cell in cells.items():
        scores[name] = finite(cell.value)
        if not name.endswith("_chance"):
            scores[f"{name}_sem"] = finite(cell.sem)
    return scores, subject.sha256


def finite(value: Optional[float]) -> Optional[float]:
    """``value``, or None where it is missing or not finite (a silent network's smoothness)."""
    return value if value is not None and math.isfinite(value) else None


def register_point(point: Point, sweep: Sweep, device: str) -> None:
    """Register the point's finished run as its variant and mark it with the sweep."""
    entry = register(Path(point.cfg.out), point.tag, default=False, half=False, device=device)
    path = registry.REGISTRY_PATH
    text = registry_text(path, point.name, {**entry, "sweep": sweep.name}, default=False)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    registry._read_registry.cache_clear()


def point_files(point: Point) -> list[Path]:
    """The registry file and the point's registered weights and model card."""
    weights = registry.weights_file(registry.resolve(point.name))
    return [registry.REGISTRY_PATH, weights, weights.with_suffix(".md")]


# ----------------------------------------------------------------------------- the sweep

class Study:
    """Rank 0's state of a sweep: the finished point records and the files they go into."""

    def __init__(self, sweep: Sweep, runs: Path, device: str, command: str, repo: Optional[Path]):
        self.sweep, self.runs, self.device, self.command, self.repo = sweep, runs, device, command, repo
        self.folder = sweep_folder(sweep.name)
        self.previous = tradeoff.read_points(self.folder)
        self.records: dict[str, dict] = {}

    def add(self, point: Point, just_trained: bool) -> None:
        """Register (when just trained), score and record ``point``."""
        if just_trained:
            register_point(point, self.sweep, self.device)
        scores, sha = score(point, self.runs, self.device)
        earlier = self.previous.get(point.name)
        self.records[point.name] = tradeoff.point_record(point, scores, sha, point_key(point),
                                                         training_record(point, earlier))

    def write(self, point: Optional[Point] = None) -> list[Path]:
        """Rewrite the trade-off files; with ``--git-commit``, commit them (and ``point``'s files)."""
        pending = [p.name for p in self.sweep.points if p.name not in self.records]
        summary = tradeoff.summarize(self.sweep, list(self.records.values()), pending, self.command)
        paths = tradeoff.write(self.folder, summary)
        if self.repo is not None and self.records:
            files = paths + (point_files(point) if point is not None else
                             [f for p in self.sweep.points if p.name in self.records for f in point_files(p)])
            count = len(self.records)
            what = point.name if point is not None else f"{count} finished point{'s' if count != 1 else ''}"
            commit(self.repo, list(dict.fromkeys(files)), f"sweep {self.sweep.name}: {what}")
        return paths


def run_sweep(sweep: Sweep, runs: Path, device: str, max_points: Optional[int], command: str,
              repo: Optional[Path], train_only: bool = False) -> list[Path]:
    """Train, register, score and write every point not yet done (at most ``max_points``);
    returns the trade-off files (and rank 0 prints them). A point another process is
    training (``RunInUse``) is put off: it is registered once that process is done, and the
    sweep goes on with the next point meanwhile. ``train_only``: train the points that are
    free and whose aux is registered, and nothing else (returns no files)."""
    with session(device) as rt:
        ranks = Ranks(rt)
        study = Study(sweep, runs, str(rt.device), command, repo) if rt.main and not train_only else None

        def start() -> list[bool]:
            done = done_points(sweep, study.previous)
            for point, finished in zip(sweep.points, done):
                if finished:
                    study.add(point, just_trained=False)
            study.write()
            return done

        def train(point: Point, wait: bool) -> bool:
            """Train ``point`` (resumed, or skipped where finished); False when it waits for an
            aux not yet registered, or (without ``wait``) another process is training it."""
            if point.aux is not None and ranks.share(lambda: aux_sha256(point)) is None:
                return False
            aux = ranks.share(lambda: str(registry.weights_file(registry.resolve(point.aux))) if point.aux else None)
            try:
                train_pipeline(dataclasses.replace(point.cfg, aux_weights=aux), resume=True,
                               command=f"{command}  # point {point.name}", wait=wait)
            except RunInUse:
                return False
            return True

        if train_only:
            done = ranks.share(lambda: done_points(sweep, tradeoff.read_points(sweep_folder(sweep.name))))
        else:
            done = ranks.share(start)
        todo = [point for point, finished in zip(sweep.points, done) if not finished]
        put_off: list[Point] = []
        trained = 0
        while todo or put_off:
            if max_points is not None and trained >= max_points:
                break
            point = None if train_only else next((p for p in put_off if train(p, wait=False)), None)
            if point is not None:
                put_off.remove(point)
            elif todo:
                point = todo.pop(0)
                if not train(point, wait=False):
                    if rt.main:
                        print(f"{point.name}: {'skipped' if train_only else 'put off'} (another process is training "
                              "it, or its aux is not registered yet)", flush=True)
                    if not train_only:
                        put_off.append(point)
                    continue
            else:
                point = put_off.pop(0)
                if not train(point, wait=True):
                    raise SweepError(f"{point.name}: its aux {point.aux} is not registered; run the sweep again")
            trained += 1
            if not train_only:
                def finish() -> None:
                    study.add(point, just_trained=True)
                    study.write(point)
                ranks.share(finish)
        if train_only:
            if rt.main:
                print(f"Trained {trained} point{'s' if trained != 1 else ''}; the sweep without --train-only "
                      "registers and scores them.")
            return []
        paths = ranks.share(lambda: study.write())
        if rt.main:
            print("Trade-off: " + ", ".join(str(p) for p in paths))
        return paths


def command_line(argv: Optional[list[str]]) -> str:
    """The command as the sweep's files and cards record it: without ``--max-points``,
    which only stops a run early and changes nothing it writes."""
    args, kept = list(sys.argv[1:] if argv is None else argv), []
    while args:
        arg = args.pop(0)
        if arg == "--max-points":
            args = args[1:]
        elif not arg.startswith("--max-points="):
            kept.append(arg)
    return shlex.join(["tdsnn-sweep", *kept])


def main(argv=None) -> int:
    """The ``tdsnn-sweep`` command; returns its exit status."""
    args = parse_args(argv)
    overrides = {k: getattr(args, k) for k in ("device", "workers") if getattr(args, k) is not None}
    try:
        if args.max_points is not None and args.max_points < 0:
            raise SweepError(f"--max-points: expected a whole number >= 0, got {args.max_points}")
        if args.train_only and args.git_commit:
            raise SweepError("--train-only registers and commits nothing: run --git-commit without it")
        sweep = load_sweep(args.config, args.runs, overrides)
        runs = args.runs or Path(sweep.points[0].cfg.out).parent
        check_runs(sweep)
        repo = repository(sweep_folder(sweep.name)) if args.git_commit else None
        if repo is not None:
            for path in (registry.REGISTRY_PATH, sweep_folder(sweep.name)):
                if not path.resolve().is_relative_to(repo):
                    raise SweepError(f"--git-commit: {path} is outside the git work tree {repo}")
        registry.load_registry(registry.REGISTRY_PATH)
    except (SweepError, InvalidName, GitError, registry.RegistryError) as err:
        print(f"tdsnn-sweep: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        for point, done in zip(sweep.points, done_points(sweep, tradeoff.read_points(sweep_folder(sweep.name)))):
            print(f"{'done   ' if done else 'pending'} {point.name}")
        return 0
    try:
        run_sweep(sweep, runs, sweep.points[0].cfg.device, args.max_points, command_line(argv), repo,
                  train_only=args.train_only)
    except (NonFiniteLoss, GitError, ConfigError, CheckpointError, DataError, SweepError) as err:
        print(f"tdsnn-sweep: {err}", file=sys.stderr)
        return 3 if isinstance(err, NonFiniteLoss) else 1 if isinstance(err, GitError) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
