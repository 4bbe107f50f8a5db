"""tdsnn-train: the TDSNN training pipeline (METHOD.md §4) as resumable stages.

    tsresnet18         aux (train an SResNet18) -> swap (grating rates -> swapped positions)
                       -> train (from scratch, task loss + STC)
    sresnet18/resnet18 train (task loss)
    toponet_resnet18   train (task loss + TopoLoss)

Each stage writes into ``OUT/<stage>/`` and ends with ``stage.json``; a finished stage
whose recorded config matches is skipped, one that does not match is refused.
Options come from the dataclass defaults, then ``--config FILE.yaml``, then CLI flags;
the resolved config is written to ``OUT/config.yaml``. Distributed training runs under
``torchrun`` (NCCL on CUDA, gloo on CPU).

    tdsnn-train --model tsresnet18 --data fmnist --epochs 5 --out runs/tsresnet18-fmnist
    torchrun --nproc_per_node 8 -m tdsnn.train --model tsresnet18 --data imagenet:/data/imagenet
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import itertools
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist
import yaml
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from . import __version__
from .analysis.accuracy import top1_accuracy
from .analysis.responses import block_rates
from .checkpoint import CheckpointError, atomic_write, load_state, read_checkpoint, save_model, sha256_file
from .config import BLOCKS, ModelConfig
from .data import DataError, DataSpec, build_dataset, num_classes
from .registry import create_model, load_model, resolve
from .stimuli import sine_gratings
from .swap import swap_optimize

DEFAULT_INPUT_SIZE = {"fmnist": 32, "cifar100": 32, "synthetic": 32, "imagenet": 224, "folder": 224}


@dataclass
class TrainConfig:
    """Every option of a training run (ImageNet recipe defaults, METHOD.md §4).

    model_options: ModelConfig overrides (e.g. ``{"timesteps": 4, "stc": {"alpha": 50}}``);
    lr: AdamW learning rate, cosine-decayed to 0 after ``warmup_epochs`` of linear warm-up;
    aux_epochs: epochs of the auxiliary SNN (default: ``epochs``); aux_weights: use this
    trained SResNet18 checkpoint as the auxiliary SNN instead of training one; swap_windows /
    swap_steps: windows per sheet and attempts per window of the position
    pre-optimization; max_steps: stop after this many optimizer steps (resumable);
    checkpoint_minutes: also checkpoint this often within an epoch.
    """
    model: str = "tsresnet18"
    data: str = "imagenet"
    out: Optional[str] = None
    input_size: Optional[int] = None
    model_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 300
    aux_epochs: Optional[int] = None
    aux_weights: Optional[str] = None
    batch_size: int = 128
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    amp: bool = True
    channels_last: bool = False
    seed: int = 0
    workers: int = 4
    swap_windows: int = 2000
    swap_steps: int = 500
    max_steps: Optional[int] = None
    checkpoint_minutes: float = 10.0
    device: str = "auto"

    def resolved(self) -> "TrainConfig":
        spec = DataSpec.parse(self.data)
        arch = self.model.split(".")[0]
        return dataclasses.replace(
            self,
            input_size=self.input_size or DEFAULT_INPUT_SIZE[spec.name],
            out=self.out or f"runs/{arch}-{spec.name}",
            aux_epochs=self.aux_epochs if self.aux_epochs is not None else self.epochs,
        )


# ----------------------------------------------------------------------------- config I/O

_MODEL_FLAGS = {  # CLI flag -> path in model_options
    "timesteps": ("timesteps",), "width": ("width",), "stem": ("stem",),
    "alpha": ("stc", "alpha"), "beta": ("stc", "beta"), "clusters": ("stc", "clusters_per_layer"),
    "window": ("stc", "window"), "topo_tau": ("topoloss", "tau"),
}


_FLAG_TYPES = {"int": int, "float": float, "str": str, "Optional[int]": int, "Optional[str]": str}


def parse_args(argv=None) -> tuple[TrainConfig, bool]:
    """TrainConfig from defaults < ``--config`` YAML < CLI flags, and the ``--resume`` flag."""
    parser = argparse.ArgumentParser(prog="tdsnn-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file of TrainConfig options")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted stage from its last checkpoint")
    for f in dataclasses.fields(TrainConfig):
        if f.name == "model_options":
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(flag, type=_FLAG_TYPES[f.type], default=None)
    for flag in _MODEL_FLAGS:
        kind = {"stem": str, "timesteps": int, "clusters": int, "window": int}.get(flag, float)
        parser.add_argument("--" + flag.replace("_", "-"), type=kind, default=None,
                            help="model option " + ".".join(_MODEL_FLAGS[flag]))
    args = vars(parser.parse_args(argv))

    config_file, resume = args.pop("config"), args.pop("resume")
    values: dict[str, Any] = {}
    if config_file:
        with open(config_file) as fh:
            values = yaml.safe_load(fh) or {}
        unknown = set(values) - {f.name for f in dataclasses.fields(TrainConfig)}
        if unknown:
            parser.error(f"{config_file}: unknown options {sorted(unknown)}")
    options = dict(values.get("model_options") or {})
    for flag, path in _MODEL_FLAGS.items():
        value = args.pop(flag)
        if value is not None:
            target = options
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = value
    values.update({k: v for k, v in args.items() if v is not None})
    values["model_options"] = options
    return TrainConfig(**values), resume


#: Options that do not change what a run computes, and those that only the aux/swap stages read.
_VOLATILE = ("out", "workers", "max_steps", "checkpoint_minutes", "device")
_PIPELINE_ONLY = ("aux_epochs", "aux_weights", "swap_windows", "swap_steps")


def fit_options(cfg: TrainConfig) -> dict[str, Any]:
    """The options that determine one stage's training (what checkpoints and stage markers record)."""
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _VOLATILE + _PIPELINE_ONLY}


def _comparable(config: Optional[dict]) -> Optional[dict]:
    """A run config as JSON, its model config completed with the defaults of options that
    were added after it was written (so such runs still resume)."""
    if config is None:
        return None
    config = json.loads(json.dumps(config, default=str))
    if "model_config" in config:
        config["model_config"] = json.loads(json.dumps(ModelConfig.from_dict(config["model_config"]).to_dict(),
                                                       default=str))
    return config


def config_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- distributed

@dataclass
class Runtime:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def init_runtime(device: str) -> Runtime:
    """Process group from torchrun's environment (NCCL on CUDA, gloo on CPU) and this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    rank = 0
    if world > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo")
        rank = dist.get_rank()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return Runtime(rank, world, torch.device("cuda", local))
    return Runtime(rank, world, torch.device("cpu"))


# ----------------------------------------------------------------------------- data order

class SeededItems(Dataset):
    """Wraps a dataset so each item's random augmentation depends only on (seed, epoch, index).

    This makes a resumed run draw exactly the augmentations the uninterrupted run would,
    whatever the number of loader workers.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_000_007 + index)
            return self.dataset[index]


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can start an epoch after its first ``skip`` indices."""
    skip = 0

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return super().__len__() - self.skip


# ----------------------------------------------------------------------------- objective

class Objective(nn.Module):
    """Task loss plus the model's topographic term (STC or TopoLoss) in one forward, so that
    DistributedDataParallel sees every parameter use. Returns loss, logits and scalar logs."""

    def __init__(self, model: nn.Module, topographic: bool):
        super().__init__()
        self.model, self.topographic = model, topographic

    def forward(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
        logits, blocks = self.model.forward_blocks(images)
        loss = nn.functional.cross_entropy(logits, labels)
        logs = {"ce": loss.detach()}
        if self.model.is_spiking:
            logs["rate"] = torch.stack([b.detach().mean() for b in blocks.values()]).mean()
        if self.topographic:
            term, extra = self.model.topo_loss(blocks, generator=generator)
            loss = loss + term
            logs.update({k: torch.tensor(v) for k, v in extra.items()})
        return loss, logits.detach(), logs


def cosine_with_warmup(total_steps: int, warmup_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


# ----------------------------------------------------------------------------- checkpoints

class TrainingState:
    """The resumable state of one stage in ``directory``: ``last.safetensors`` (model),
    ``last.state.safetensors`` (optimizer tensors, RNG states) and ``last.json`` (config,
    epoch/step, optimizer hyper-parameters, scheduler and scaler state, metrics, code
    version and the sha256 of both tensor files). ``last.json`` is written last, so it
    only ever points at complete files."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.json = directory / "last.json"

    def exists(self) -> bool:
        return self.json.exists()

    def save(self, model, optimizer, scheduler, scaler, generator, progress: dict, config: dict) -> None:
        model_path = self.directory / "last.safetensors"
        state_path = self.directory / "last.state.safetensors"
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
            "config": config, "progress": progress, "version": __version__,
            "optimizer_param_groups": opt["param_groups"], "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "sha256": {"last.safetensors": model_sha, "last.state.safetensors": sha256_file(state_path)},
        }
        atomic_write(self.json, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1, default=str)))

    def load(self, model, optimizer, scheduler, scaler, generator, config: dict) -> dict:
        """Restore everything saved by ``save``; refuses corrupt or mismatched checkpoints."""
        try:
            record = json.loads(self.json.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{self.json} is unreadable: {err}") from err
        if _comparable(record.get("config")) != _comparable(config):
            raise CheckpointError(f"{self.json} was written by a different config; use a new --out "
                                  f"or remove {self.directory} to start over")
        sha = record["sha256"]
        _, state = read_checkpoint(self.directory / "last.safetensors", sha["last.safetensors"])
        load_state(model, state, str(self.directory / "last.safetensors"))
        state_path = self.directory / "last.state.safetensors"
        if not state_path.exists() or sha256_file(state_path) != sha["last.state.safetensors"]:
            raise CheckpointError(f"{state_path} is missing or does not match its sha256 in {self.json}")
        tensors = load_file(str(state_path))
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


def append_metrics(directory: Path, row: dict) -> None:
    """Append one epoch's metrics to ``metrics.jsonl`` and ``metrics.csv``."""
    with open(directory / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")
    csv_path = directory / "metrics.csv"
    new = not csv_path.exists()
    with open(csv_path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


class NonFiniteLoss(RuntimeError):
    pass


# ----------------------------------------------------------------------------- training loop

def fit(model: nn.Module, stage_dir: Path, epochs: int, cfg: TrainConfig, rt: Runtime, train_set: Dataset,
        val_set: Dataset, resume: bool) -> dict:
    """Train ``model`` for ``epochs`` with AdamW + warm-up/cosine; checkpoints in ``stage_dir``.

    Returns the final metrics. Stops with ``NonFiniteLoss`` (last good checkpoint kept)
    when the loss is NaN or infinite.
    """
    model.to(rt.device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    topographic = hasattr(model, "topo_loss")
    objective = Objective(model, topographic)
    wrapped = DistributedDataParallel(objective, device_ids=[rt.device.index] if rt.device.type == "cuda" else None) \
        if rt.world > 1 else objective
    seeded = SeededItems(train_set, cfg.seed)
    sampler = ResumableSampler(seeded, num_replicas=rt.world, rank=rt.rank, shuffle=True, seed=cfg.seed, drop_last=True)
    loader_len = len(sampler) // cfg.batch_size
    if loader_len == 0:
        raise ValueError(f"batch size {cfg.batch_size} x {rt.world} processes exceeds the {len(train_set)} training images")
    total_steps = epochs * loader_len
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(total_steps, round(cfg.warmup_epochs * loader_len)))
    use_amp = cfg.amp and rt.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    generator = torch.Generator().manual_seed(cfg.seed * 7919 + rt.rank)  # STC clusters differ per rank
    state = TrainingState(stage_dir)
    run_config = json.loads(json.dumps(fit_options(cfg) | {"model_config": model.config.to_dict(),
                                                           "world": rt.world}, default=str))
    progress = {"epoch": 0, "batch": 0, "step": 0, "metrics": []}
    if state.exists():
        if not resume:
            raise CheckpointError(f"{stage_dir} already holds a checkpoint; pass --resume to continue it "
                                  "or choose a new --out")
        progress = state.load(model, optimizer, scheduler, scaler, generator, run_config)
        if rt.main:
            print(f"resumed {stage_dir} at epoch {progress['epoch']} step {progress['step']}", flush=True)
    model.train()

    def checkpoint() -> None:
        if rt.main:
            state.save(model, optimizer, scheduler, scaler, generator, progress, run_config)
        rt.barrier()

    last_save = time.monotonic()
    stop = False
    for epoch in range(progress["epoch"], epochs):
        seeded.epoch = epoch
        sampler.set_epoch(epoch)
        sampler.skip = progress["batch"] * cfg.batch_size
        loader = DataLoader(seeded, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                            drop_last=True, pin_memory=rt.device.type == "cuda")
        sums: dict[str, float] = {}
        seen = 0
        started = time.monotonic()
        bar = tqdm(loader, desc=f"{stage_dir.name} epoch {epoch + 1}/{epochs}", disable=not rt.main,
                   initial=progress["batch"], total=loader_len)
        for images, labels in bar:
            images, labels = images.to(rt.device, non_blocking=True), labels.to(rt.device, non_blocking=True)
            if cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(rt.device.type, enabled=use_amp):
                loss, logits, logs = wrapped(images, labels, generator)
            finite = torch.isfinite(loss.detach()).float()
            if rt.world > 1:
                dist.all_reduce(finite, op=dist.ReduceOp.MIN)
            if finite.item() < 1:
                raise NonFiniteLoss(f"loss became {loss.item()} at epoch {epoch + 1}, step {progress['step']}; "
                                    f"stopped, the last good checkpoint in {stage_dir} is kept "
                                    "(try a lower --lr or smaller --alpha/--beta)")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            progress["batch"] += 1
            progress["step"] += 1
            seen += 1
            logs["loss"] = loss.detach()
            logs["acc"] = (logits.argmax(1) == labels).float().mean() * 100
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            bar.set_postfix({k: f"{v / seen:.3g}" for k, v in sums.items()})
            if cfg.max_steps is not None and progress["step"] >= cfg.max_steps:
                stop = True
                break
            if time.monotonic() - last_save > cfg.checkpoint_minutes * 60:
                checkpoint()
                last_save = time.monotonic()
        if stop and progress["batch"] < loader_len:
            checkpoint()
            break
        row = {"epoch": epoch + 1, "step": progress["step"], "lr": scheduler.get_last_lr()[0],
               **{f"train_{k}": v / max(1, seen) for k, v in sums.items()},
               "seconds": time.monotonic() - started}
        if rt.main:
            row["val_acc"] = top1_accuracy(model, val_set, cfg.batch_size, rt.device, cfg.workers)
            print(json.dumps(row), flush=True)
            append_metrics(stage_dir, row)
        progress.update(epoch=epoch + 1, batch=0)
        progress["metrics"].append(row)
        checkpoint()
        if stop:
            break
    progress["finished"] = progress["epoch"] >= epochs
    if rt.world > 1:
        progress["rank_fingerprints"] = rank_fingerprints(model)
    return progress


def rank_fingerprints(model: nn.Module) -> list[float]:
    """A float64 checksum of the parameters from every rank; raises if ranks diverged."""
    local = torch.stack([p.detach().double().sum() * (i + 1) for i, p in enumerate(model.parameters())]).sum()
    gathered = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local.to(next(model.parameters()).device))
    values = [float(v) for v in gathered]
    if len(set(values)) != 1:
        raise RuntimeError(f"DDP ranks diverged: parameter checksums {values}")
    return values


# ----------------------------------------------------------------------------- stages

def model_options(cfg: TrainConfig, spec: DataSpec, train_set: Dataset) -> dict:
    return {"num_classes": num_classes(spec, train_set), "input_size": cfg.input_size, **cfg.model_options}


def run_stage(name: str, out: Path, key: dict, rt: Runtime, work) -> dict:
    """Run ``work(stage_dir)`` unless ``stage.json`` records the same ``key``; returns its record."""
    stage_dir = out / name
    marker = stage_dir / "stage.json"
    digest = config_hash(key)
    if marker.exists():
        record = json.loads(marker.read_text())
        if record["config_hash"] != digest:
            raise CheckpointError(f"stage {name!r} in {out} was run with a different config "
                                  f"({record['config_hash']} != {digest}); use a new --out or remove {stage_dir}")
        if rt.main:
            print(f"stage {name}: done earlier, skipped ({marker})", flush=True)
        return record
    stage_dir.mkdir(parents=True, exist_ok=True)
    record = work(stage_dir)
    if not record.get("finished", True):
        return record
    record["config_hash"] = digest
    if rt.main:
        atomic_write(marker, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1, default=str)))
    rt.barrier()
    return json.loads(marker.read_text())  # rank 0's record (artefact sha256s), the same on every rank


def grating_rates(model: nn.Module, preprocessing, size: int, rt: Runtime) -> dict[str, torch.Tensor]:
    """Firing rates ``[640, C*H*W]`` of every block to the sine gratings."""
    images, _ = sine_gratings(size)
    return block_rates(model, images, preprocessing, BLOCKS, device=rt.device)


def train_pipeline(cfg: TrainConfig, resume: bool = False, command: Optional[str] = None) -> Path:
    """Run every stage of ``cfg.model``; returns the path of the final model checkpoint.

    command: the command line, recorded in ``OUT/command.txt`` by the first run."""
    cfg = cfg.resolved()
    rt = init_runtime(cfg.device)
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    spec = DataSpec.parse(cfg.data)
    train_set = build_dataset(spec, cfg.input_size, train=True)
    val_set = build_dataset(spec, cfg.input_size, train=False)
    options = model_options(cfg, spec, train_set)
    entry = resolve(cfg.model)
    if rt.main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "config.yaml", lambda tmp: Path(tmp).write_text(
            yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)))
        if command and not (out / "command.txt").exists():
            atomic_write(out / "command.txt", lambda tmp: Path(tmp).write_text(command + "\n"))
    common = fit_options(cfg)
    positions: Optional[dict[str, torch.Tensor]] = None
    positions_sha256: Optional[str] = None

    if entry.arch == "tsresnet18":
        aux_options = {k: v for k, v in options.items() if k not in ("sheet", "stc")}
        aux_key = {**common, "stage": "aux", "model_options": aux_options, "epochs": cfg.aux_epochs,
                   "model": "sresnet18", "aux_weights": cfg.aux_weights}

        def train_aux(stage_dir: Path) -> dict:
            if cfg.aux_weights:
                aux = load_model(cfg.aux_weights)
                if aux.config.arch != "sresnet18":
                    raise ValueError(f"--aux-weights {cfg.aux_weights} is a {aux.config.arch}, not an sresnet18")
                return {"path": str(Path(cfg.aux_weights).resolve()), "sha256": sha256_file(cfg.aux_weights)}
            torch.manual_seed(cfg.seed)
            aux = create_model("sresnet18", **aux_options)
            progress = fit(aux, stage_dir, cfg.aux_epochs, cfg, rt, train_set, val_set, resume)
            if progress["finished"] and rt.main:
                progress["path"] = str((stage_dir / "final.safetensors").resolve())
                progress["sha256"] = save_model(aux, stage_dir / "final.safetensors")
            return progress

        aux_record = run_stage("aux", out, aux_key, rt, train_aux)
        if not aux_record.get("finished", True):
            return out / "aux" / "last.safetensors"
        swap_key = {**aux_key, "stage": "swap", "sheet": options.get("sheet"),
                    "swap_windows": cfg.swap_windows, "swap_steps": cfg.swap_steps}

        def swap(stage_dir: Path) -> dict:
            record: dict[str, Any] = {"layers": {}}
            if rt.main:
                aux = load_model(aux_record["path"], aux_record["sha256"]).to(rt.device)
                sheets_model = create_model(cfg.model, **options)
                rates = grating_rates(aux, spec.preprocessing(cfg.input_size), cfg.input_size, rt)
                swapped = {}
                for block in BLOCKS:
                    sheet = sheets_model.sheet(block)
                    result = swap_optimize(rates[block].cpu(), sheet.positions, sheet.cluster_width_mm,
                                           n_windows=cfg.swap_windows, steps_per_window=cfg.swap_steps,
                                           seed=cfg.seed, progress=True)
                    swapped[block] = result.positions
                    record["layers"][block] = {"loss_before": result.loss_before, "loss_after": result.loss_after,
                                               "accepted": result.accepted, "attempts": result.attempts,
                                               "seconds": result.seconds}
                    print(f"swap {block}: loss {result.loss_before:.4f} -> {result.loss_after:.4f} "
                          f"({result.accepted}/{result.attempts} swaps kept, {result.seconds:.0f} s)", flush=True)
                atomic_write(stage_dir / "positions.safetensors", lambda tmp: save_file(swapped, tmp))
                record["sha256"] = sha256_file(stage_dir / "positions.safetensors")
            return record

        swap_record = run_stage("swap", out, swap_key, rt, swap)
        path = out / "swap" / "positions.safetensors"
        if sha256_file(path) != swap_record["sha256"]:
            raise CheckpointError(f"{path} does not match the sha256 recorded in {out / 'swap' / 'stage.json'}")
        positions, positions_sha256 = load_file(str(path)), swap_record["sha256"]

    def train_main(stage_dir: Path) -> dict:
        torch.manual_seed(cfg.seed)
        model = create_model(cfg.model, **options)
        if positions is not None:
            for block, pos in positions.items():
                model.sheet(block).set_positions(pos, model.config.sheet)
        progress = fit(model, stage_dir, cfg.epochs, cfg, rt, train_set, val_set, resume)
        if progress["finished"] and rt.main:
            progress["sha256"] = save_model(model, stage_dir / "final.safetensors")
        return progress

    train_key = {**common, "stage": "train", "model_options": options,
                 "positions": positions_sha256}
    record = run_stage("train", out, train_key, rt, train_main)
    final = out / "train" / ("final.safetensors" if record.get("finished", True) else "last.safetensors")
    if rt.main:
        print(f"{'finished' if record.get('finished', True) else 'stopped'}: {final}", flush=True)
    if rt.world > 1:
        dist.destroy_process_group()
    return final


def main(argv=None) -> int:
    cfg, resume = parse_args(argv)
    command = "tdsnn-train " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        train_pipeline(cfg, resume=resume, command=command)
    except NonFiniteLoss as err:
        print(f"tdsnn-train: {err}", file=sys.stderr)
        return 3
    except (CheckpointError, DataError, ValueError, KeyError) as err:
        print(f"tdsnn-train: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
