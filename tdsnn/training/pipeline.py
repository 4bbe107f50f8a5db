"""The training pipeline (docs/method.md §4) as resumable stages.

    tsresnet18, tscornet, tspikformer
                       aux (train the non-topographic twin, ``tdsnn.models.TWINS``: sresnet18,
                       scornet, spikformer) -> swap (its grating rates -> swapped positions)
                       -> train (from scratch, task loss + STC)
    sresnet18, scornet, spikformer, resnet18
                       train (task loss)
    toponet_resnet18   train (task loss + TopoLoss)

Each stage writes into ``OUT/<stage>/`` and ends with ``stage.json``; a finished stage
whose recorded options match is skipped, one whose options differ is refused. Before
anything is written the run is accepted (``accept``): the data loads, the model options
are valid and no finished stage, checkpoint or ``--aux-weights`` file stands in its way.
Only then are the run records ``OUT/config.yaml`` and ``OUT/command.txt`` written. One
process at a time trains a run folder (``run_lock``): an existing folder is accepted, and
trained, only under its lock.
"""
from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import Dataset

from ..analysis.responses import block_rates
from ..checkpoint import (CheckpointError, atomic_write, atomic_write_text, read_config, read_json, save_model,
                          sha256_file)
from ..config import ModelConfig
from ..data import DataSpec, build_dataset, num_classes
from ..models import TWINS
from ..registry import build, build_config, load_model, resolve
from ..stimuli import sine_gratings
from ..swap import MIN_WINDOW_UNITS, swap_optimize
from .config import ConfigError, TrainConfig, as_json, config_hash, dump_yaml, fit_options
from .loop import checkpoint_config, fit
from .order import steps_per_epoch
from .run_lock import RunInUse, hold_run
from .runtime import Runtime, session
from .state import TrainingState, resume_point

def model_config(name: str, options: dict[str, Any]) -> ModelConfig:
    """The config ``create_model(name, **options)`` builds (a bare architecture name: its own
    registered defaults, not its default variant's); ``ConfigError`` for bad options."""
    config = build_config(name)
    try:
        config = config.replace(**options)
        ModelConfig.from_dict(as_json(config.to_dict()))  # every section's fields checked
    except (TypeError, ValueError, AttributeError) as err:
        raise ConfigError(f"model options {options}: {err}") from err
    return config


@dataclass
class Run:
    """What the stages of one run share: resolved options, runtime, data and model options."""
    cfg: TrainConfig
    rt: Runtime
    spec: DataSpec
    train_set: Dataset
    val_set: Dataset
    options: dict[str, Any]
    resume: bool = False

    @classmethod
    def prepare(cls, cfg: TrainConfig, rt: Runtime, resume: bool = False) -> "Run":
        """Load the data of ``cfg`` (resolved) and derive the model options from it."""
        torch.manual_seed(cfg.seed)
        spec = DataSpec.parse(cfg.data)
        train_set = build_dataset(spec, cfg.input_size, train=True)
        val_set = build_dataset(spec, cfg.input_size, train=False)
        options = {"num_classes": num_classes(spec, train_set), "input_size": cfg.input_size, **cfg.model_options}
        return cls(cfg, rt, spec, train_set, val_set, options, resume)

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def arch(self) -> str:
        return resolve(self.cfg.model).arch

    @property
    def aux_arch(self) -> Optional[str]:
        """The auxiliary SNN's architecture (the twin of a topographic SNN); ``None`` when the
        run has no aux and swap stages."""
        return TWINS.get(self.arch)

    @property
    def aux_options(self) -> dict[str, Any]:
        """The auxiliary SNN's options: the run's, without sheets or STC."""
        return {k: v for k, v in self.options.items() if k not in ("sheet", "stc")}

    @property
    def model_config(self) -> ModelConfig:
        return model_config(self.cfg.model, self.options)

    @property
    def aux_config(self) -> ModelConfig:
        return model_config(self.aux_arch, self.aux_options)


# ----------------------------------------------------------------------------- stage keys

def aux_key(run: Run) -> dict[str, Any]:
    """The options the aux stage's marker records."""
    cfg = run.cfg
    return {**fit_options(cfg), "stage": "aux", "model_options": run.aux_options, "epochs": cfg.aux_epochs,
            "model": run.aux_arch, "aux_weights": cfg.aux_weights}


def swap_key(run: Run) -> dict[str, Any]:
    """The options the swap stage's marker records."""
    return {**aux_key(run), "stage": "swap", "sheet": run.options.get("sheet"),
            "swap_windows": run.cfg.swap_windows, "swap_steps": run.cfg.swap_steps}


def train_key(run: Run, positions_sha256: Optional[str]) -> dict[str, Any]:
    """The options the train stage's marker records (with the sha256 of the swapped positions)."""
    return {**fit_options(run.cfg), "stage": "train", "model_options": run.options, "positions": positions_sha256}


def finished(stage_dir: Path, key: dict[str, Any]) -> Optional[dict]:
    """The record of a stage finished with options ``key``; ``None`` if it has not finished,
    ``CheckpointError`` if it finished with other options."""
    marker = stage_dir / "stage.json"
    if not marker.exists():
        return None
    record = read_json(marker)
    recorded = record.get("config_hash") if isinstance(record, dict) else None
    digest = config_hash(key)
    if recorded != digest:
        raise CheckpointError(f"stage {stage_dir.name!r} in {stage_dir.parent} was run with a different config "
                              f"({recorded} != {digest}); use a new --out or remove {stage_dir}")
    return record


def run_stage(run: Run, name: str, key: dict[str, Any], work: Callable[[Path], dict]) -> dict:
    """Run ``work(stage_dir)`` unless the stage finished with ``key``; returns its record."""
    stage_dir = run.out / name
    record = finished(stage_dir, key)
    if record is not None:
        if run.rt.main:
            print(f"stage {name}: done earlier, skipped ({stage_dir / 'stage.json'})", flush=True)
        return record
    stage_dir.mkdir(parents=True, exist_ok=True)
    record = work(stage_dir)
    if not record.get("finished", True):
        return record
    record["config_hash"] = config_hash(key)
    marker = stage_dir / "stage.json"
    if run.rt.main:
        atomic_write_text(marker, json.dumps(as_json(record), indent=1))
    run.rt.barrier()
    return read_json(marker)  # rank 0's record (artefact sha256s), the same on every rank


# ----------------------------------------------------------------------------- stages

def aux_stage(run: Run, stage_dir: Path) -> dict:
    """Train the auxiliary SNN, or record ``--aux-weights`` (path and sha256)."""
    cfg = run.cfg
    if cfg.aux_weights:
        return {"path": str(Path(cfg.aux_weights).resolve()), "sha256": sha256_file(cfg.aux_weights)}
    torch.manual_seed(cfg.seed)
    aux = build(run.aux_config)
    progress = fit(aux, stage_dir, cfg.aux_epochs, cfg, run.rt, run.train_set, run.val_set, run.resume)
    if progress["finished"] and run.rt.main:
        progress["path"] = str((stage_dir / "final.safetensors").resolve())
        progress["sha256"] = save_model(aux, stage_dir / "final.safetensors")
    return progress


def grating_rates(model: nn.Module, run: Run) -> dict[str, torch.Tensor]:
    """Firing rates ``{block: [640, C*H*W]}`` of every block of ``model`` to the sine gratings."""
    size = run.cfg.input_size
    images, _ = sine_gratings(size)
    return block_rates(model, images, run.spec.preprocessing(size), model.block_names, device=run.rt.device)


def swap_stage(run: Run, stage_dir: Path, aux_record: dict) -> dict:
    """Swap-optimize every sheet's positions on the auxiliary SNN's grating rates (first
    process only); writes ``positions.safetensors`` and returns the per-sheet losses."""
    cfg = run.cfg
    record: dict[str, Any] = {"layers": {}}
    if not run.rt.main:
        return record
    aux = load_model(aux_record["path"], aux_record["sha256"]).to(run.rt.device)
    sheets_model = build(run.model_config)
    rates = grating_rates(aux, run)
    swapped = {}
    for block in sheets_model.block_names:
        sheet = sheets_model.sheet(block)
        result = swap_optimize(rates[block].cpu(), sheet.positions, sheet.cluster_width_mm,
                               n_windows=cfg.swap_windows, steps_per_window=cfg.swap_steps,
                               seed=cfg.seed, progress=True)
        swapped[block] = result.positions
        record["layers"][block] = {"loss_before": result.loss_before, "loss_after": result.loss_after,
                                   "accepted": result.accepted, "attempts": result.attempts,
                                   "seconds": result.seconds}
        sparse = math.isnan(result.loss_before)
        loss = (f"no evaluation window of {sheet.cluster_width_mm} mm holds {MIN_WINDOW_UNITS} units, loss undefined"
                if sparse else f"loss {result.loss_before:.4f} -> {result.loss_after:.4f}")
        print(f"swap {block}: {loss} ({result.accepted}/{result.attempts} swaps kept, {result.seconds:.0f} s)",
              flush=True)
    atomic_write(stage_dir / "positions.safetensors", lambda tmp: save_file(swapped, tmp))
    record["sha256"] = sha256_file(stage_dir / "positions.safetensors")
    return record


def read_positions(stage_dir: Path, swap_record: dict) -> dict[str, torch.Tensor]:
    """The swapped positions ``{block: [N, 2]}`` (mm), checked against the swap stage's sha256."""
    path = stage_dir / "positions.safetensors"
    if not path.is_file() or sha256_file(path) != swap_record["sha256"]:
        raise CheckpointError(f"{path} is missing or does not match the sha256 in {stage_dir / 'stage.json'}")
    return load_file(str(path))


def train_stage(run: Run, stage_dir: Path, positions: Optional[dict[str, torch.Tensor]]) -> dict:
    """Train a fresh ``cfg.model`` (with the swapped ``positions`` on its sheets, if given)."""
    torch.manual_seed(run.cfg.seed)
    model = build(run.model_config)
    if positions is not None:
        for block, pos in positions.items():
            model.sheet(block).set_positions(pos, model.config.sheet)
    progress = fit(model, stage_dir, run.cfg.epochs, run.cfg, run.rt, run.train_set, run.val_set, run.resume)
    if progress["finished"] and run.rt.main:
        progress["sha256"] = save_model(model, stage_dir / "final.safetensors")
    return progress


# ----------------------------------------------------------------------------- the run

def _check_aux_weights(path: str, aux_arch: str) -> None:
    config = read_config(path)
    if config.arch != aux_arch:
        raise ConfigError(f"--aux-weights {path} is a {config.arch}, not an {aux_arch}")


def accept(run: Run) -> None:
    """Refuse ``run`` before anything is written (``ConfigError``/``CheckpointError``): an
    ``--out`` that is a file, a batch larger than the data, bad model options, a stage that
    finished with other options, a checkpoint without ``--resume`` or one ``--resume``
    cannot use, ``--aux-weights`` that are not a checkpoint of the model's twin."""
    cfg, out = run.cfg, run.out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    steps_per_epoch(len(run.train_set), run.rt.world, cfg.batch_size)
    model = run.model_config
    positions = None
    if run.aux_arch is not None:
        if finished(out / "aux", aux_key(run)) is None:
            if cfg.aux_weights:
                _check_aux_weights(cfg.aux_weights, run.aux_arch)
            else:
                resume_point(out / "aux", checkpoint_config(cfg, run.aux_config, run.rt.world), cfg, run.resume)
            return  # the later stages start from this one: they hold nothing yet
        swap = finished(out / "swap", swap_key(run))
        if swap is None:
            return
        positions = swap.get("sha256")
    if finished(out / "train", train_key(run, positions)) is None:
        resume_point(out / "train", checkpoint_config(cfg, model, run.rt.world), cfg, run.resume)


def write_records(run: Run, command: Optional[str]) -> None:
    """``OUT/config.yaml`` (the resolved options) and, on the first run, ``OUT/command.txt``."""
    if not run.rt.main:
        return
    run.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.out / "config.yaml", dump_yaml(run.cfg))
    if command and not (run.out / "command.txt").exists():
        atomic_write_text(run.out / "command.txt", command + "\n")


def run_stages(run: Run) -> Path:
    """Run every stage of ``run`` in order; returns the final model checkpoint, or the
    latest checkpoint of the stage that stopped early."""
    positions, positions_sha256 = None, None
    if run.aux_arch is not None:
        aux_record = run_stage(run, "aux", aux_key(run), lambda d: aux_stage(run, d))
        if not aux_record.get("finished", True):
            return TrainingState(run.out / "aux").newest_model()
        swap_record = run_stage(run, "swap", swap_key(run), lambda d: swap_stage(run, d, aux_record))
        positions, positions_sha256 = read_positions(run.out / "swap", swap_record), swap_record["sha256"]
    record = run_stage(run, "train", train_key(run, positions_sha256), lambda d: train_stage(run, d, positions))
    done = record.get("finished", True)
    final = run.out / "train" / "final.safetensors" if done else TrainingState(run.out / "train").newest_model()
    if run.rt.main:
        print(f"{'finished' if done else 'stopped'}: {final}", flush=True)
    return final


@contextlib.contextmanager
def exclusive(run: Run, wait: bool) -> Iterator[None]:
    """Rank 0 holds the run folder's lock (``hold_run``) for the block; ``RunInUse`` on every
    rank when another process holds it and ``wait`` is false."""
    with contextlib.ExitStack() as stack:
        busy: Optional[RunInUse] = None
        if run.rt.main:
            try:
                stack.enter_context(hold_run(run.out, wait))
            except RunInUse as err:
                busy = err
        if not run.rt.all_true(busy is None):
            raise busy or RunInUse(f"{run.out} is being trained by another process")
        yield


def train_pipeline(cfg: TrainConfig, resume: bool = False, command: Optional[str] = None,
                   wait: bool = False) -> Path:
    """Accept and run every stage of ``cfg.model``; returns the path of the final model
    checkpoint. command: the command line, recorded in ``OUT/command.txt`` by the first run.
    Another process training ``cfg.out``: ``RunInUse``, or with ``wait`` a wait for it."""
    cfg = cfg.resolved()
    with session(cfg.device) as rt:
        run = Run.prepare(cfg, rt, resume)
        if not run.out.is_dir():
            accept(run)  # refused before the lock creates the folder
        with exclusive(run, wait):
            accept(run)  # under the lock: another process may be writing the run until then
            write_records(run, command)
            return run_stages(run)
