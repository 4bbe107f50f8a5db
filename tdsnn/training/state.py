"""Resumable state of one training stage: checkpoint generations that survive a kill.

A checkpoint is one generation ``ckpt-NNNNNN`` of three files in the stage folder:
``.safetensors`` (the model, its config in the header), ``.state.safetensors`` (optimizer
tensors, RNG states) and ``.json`` (run config, progress, optimizer hyper-parameters,
scheduler and scaler state, code version, and the sha256 of both tensor files). Each file
is written atomically and the JSON last; a generation counts once its JSON is there and
both sha256s match. The previous generation is deleted only after the new one has been
read back and verified, so a kill at any moment leaves a complete checkpoint, and
``latest`` falls back past an incomplete or corrupt newer generation. Only finite weights
and optimizer state are saved (``finite``).

``stopped.json`` records that the stage stopped on a non-finite value; ``--resume-lr``
then continues it with a lower learning rate (``resume_point``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .. import __version__
from ..checkpoint import (CheckpointError, atomic_write, atomic_write_text, check_file, load_state, read_checkpoint,
                          read_json, save_model, sha256_file)
from .config import ConfigError, TrainConfig, as_json, comparable

_GENERATION = re.compile(r"ckpt-(\d+)\.(?:safetensors|state\.safetensors|json)")
_RECORD_KEYS = {"config", "progress", "optimizer_param_groups", "scheduler", "scaler", "sha256"}


@dataclass(frozen=True)
class Checkpoint:
    """A complete, verified generation: its number, tensor files and JSON record."""
    generation: int
    model_path: Path
    state_path: Path
    record: dict[str, Any]

    @property
    def base_lr(self) -> float:
        return self.record["scheduler"]["base_lrs"][0]


def finite(model: nn.Module, optimizer: torch.optim.Optimizer) -> bool:
    """Whether every floating-point tensor of the model and of the optimizer state is finite."""
    tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
    tensors += [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.is_floating_point()]
    if not tensors:
        return True
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


class TrainingState:
    """The checkpoint generations in ``directory`` (one stage's folder)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.stopped_path = self.directory / "stopped.json"

    def _paths(self, generation: int) -> tuple[Path, Path, Path]:
        stem = f"ckpt-{generation:06d}"
        return (self.directory / f"{stem}.safetensors", self.directory / f"{stem}.state.safetensors",
                self.directory / f"{stem}.json")

    def generations(self) -> list[int]:
        """Numbers of every generation with any file here, complete or not, newest first."""
        if not self.directory.is_dir():
            return []
        found = {int(m.group(1)) for p in self.directory.iterdir() if (m := _GENERATION.fullmatch(p.name))}
        return sorted(found, reverse=True)

    def exists(self) -> bool:
        """Whether a generation got as far as its JSON record (a possibly resumable checkpoint)."""
        return any(self._paths(g)[2].exists() for g in self.generations())

    def newest_model(self) -> Optional[Path]:
        """The model file of the newest generation with a record, or ``None``."""
        return next((self._paths(g)[0] for g in self.generations() if self._paths(g)[2].exists()), None)

    def verify(self, generation: int) -> Checkpoint:
        """``generation`` after checking that its record parses and both sha256s match."""
        model_path, state_path, record_path = self._paths(generation)
        if not record_path.exists():
            raise CheckpointError(f"{record_path.name} is missing (interrupted while being written)")
        record = read_json(record_path)
        if not isinstance(record, dict) or not _RECORD_KEYS <= set(record) or not isinstance(record["sha256"], dict):
            raise CheckpointError(f"{record_path} is not a tdsnn training checkpoint record")
        check_file(model_path, record["sha256"].get("model"))
        check_file(state_path, record["sha256"].get("state"))
        return Checkpoint(generation, model_path, state_path, record)

    def latest(self, config: dict) -> tuple[Checkpoint, list[str]]:
        """The newest complete generation and why each newer one was passed over; refuses
        a checkpoint of another config, and raises when no generation is complete."""
        skipped = []
        for generation in self.generations():
            try:
                checkpoint = self.verify(generation)
            except CheckpointError as err:
                skipped.append(f"ckpt-{generation:06d}: {err}")
                continue
            if comparable(checkpoint.record["config"]) != comparable(config):
                raise CheckpointError(f"{self.directory} holds a checkpoint written by a different config; "
                                      f"use a new --out or remove {self.directory} to start over")
            return checkpoint, skipped
        raise CheckpointError(f"no complete checkpoint in {self.directory}: {'; '.join(skipped)}")

    def open(self, config: dict, resume: bool) -> tuple[Optional[Checkpoint], list[str]]:
        """The checkpoint to continue from (``None``: start afresh) and the generations passed
        over; refuses to start over a checkpoint without ``resume``."""
        if not self.exists():
            return None, []
        if not resume:
            raise CheckpointError(f"{self.directory} already holds a checkpoint; pass --resume to continue it "
                                  "or choose a new --out")
        return self.latest(config)

    def save(self, model, optimizer, scheduler, scaler, generator, progress: dict, config: dict) -> Checkpoint:
        """Write the next generation, verify it, then delete every other generation."""
        generation = max(self.generations(), default=0) + 1
        for stale in self.directory.glob(".ckpt-*.tmp"):  # left by a process killed mid-write
            stale.unlink()
        model_path, state_path, record_path = self._paths(generation)
        model_sha = save_model(model, model_path)
        opt = optimizer.state_dict()
        tensors = {f"optimizer.{i}.{k}": v.detach().cpu().contiguous()
                   for i, s in opt["state"].items() for k, v in s.items()}
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.stc"] = generator.get_state()
        if torch.cuda.is_available():
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
        atomic_write(state_path, lambda tmp: save_file(tensors, tmp))
        record = {
            "config": config, "progress": progress, "version": __version__, "generation": generation,
            "optimizer_param_groups": opt["param_groups"], "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "sha256": {"model": model_sha, "state": sha256_file(state_path)},
        }
        atomic_write_text(record_path, json.dumps(as_json(record), indent=1))
        checkpoint = self.verify(generation)
        for old in self.generations():
            if old != generation:
                for path in self._paths(old):
                    path.unlink(missing_ok=True)
        self.stopped_path.unlink(missing_ok=True)  # training went on past the stop
        return checkpoint

    def load(self, checkpoint: Checkpoint, model, optimizer, scheduler, scaler, generator) -> dict:
        """Restore everything ``save`` wrote into ``checkpoint``; returns its progress."""
        record = checkpoint.record
        _, state = read_checkpoint(checkpoint.model_path, record["sha256"]["model"])
        load_state(model, state, str(checkpoint.model_path))
        try:
            tensors = load_file(str(checkpoint.state_path))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{checkpoint.state_path} is not readable: {err}") from err
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, idx, name = key.split(".", 2)
                opt_state.setdefault(int(idx), {})[name] = value
        optimizer.load_state_dict({"state": opt_state, "param_groups": record["optimizer_param_groups"]})
        scheduler.load_state_dict(record["scheduler"])
        scaler.load_state_dict(record["scaler"])
        torch.set_rng_state(tensors["rng.torch"])
        generator.set_state(tensors["rng.stc"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        return record["progress"]

    def mark_stopped(self, reason: str, progress: dict) -> None:
        """Record that the stage stopped on a non-finite value at ``progress``'s step."""
        record = {"reason": reason, "epoch": progress["epoch"], "step": progress["step"]}
        atomic_write_text(self.stopped_path, json.dumps(record, indent=1))

    def stopped(self) -> bool:
        """Whether the stage's last run stopped on a non-finite value (and nothing was saved since)."""
        return self.stopped_path.exists()


def resume_point(directory: Path, config: dict, cfg: TrainConfig,
                 resume: bool) -> tuple[Optional[Checkpoint], Optional[float], list[str]]:
    """Where a stage continues: its checkpoint (``None``: from the start), the learning rate
    it changes to (``cfg.resume_lr``, only for a stage that stopped on a non-finite value,
    and only if lower than the stage's) and the generations passed over. Raises
    ``CheckpointError``/``ConfigError`` for a run that must be refused."""
    state = TrainingState(directory)
    checkpoint, skipped = state.open(config, resume)
    if cfg.resume_lr is None or not state.stopped():
        return checkpoint, None, skipped
    current = checkpoint.base_lr if checkpoint is not None else cfg.lr
    if not cfg.resume_lr < current:
        raise ConfigError(f"--resume-lr {cfg.resume_lr:g} must be lower than the learning rate {current:g} "
                          f"with which {directory} stopped")
    return checkpoint, cfg.resume_lr, skipped
