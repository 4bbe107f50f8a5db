"""The fit loop of one stage: AdamW with warm-up and cosine decay, checkpoints, metrics."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..analysis.accuracy import top1_accuracy
from ..config import ModelConfig
from .config import TrainConfig, as_json, fit_options
from .metrics import EpochMeter, write_metrics
from .objective import Objective
from .order import ResumableSampler, SeededItems, steps_per_epoch
from .runtime import Runtime, rank_fingerprints
from .schedule import base_lr, cosine_with_warmup, set_base_lr
from .state import TrainingState, finite, resume_point


class NonFiniteLoss(RuntimeError):
    """The loss, the weights or the optimizer state became NaN or infinite; training stopped."""


def checkpoint_config(cfg: TrainConfig, model_config: ModelConfig, world: int) -> dict[str, Any]:
    """What a stage's checkpoints record and a resume must match: the fit options, the
    model's config and the number of processes."""
    return as_json(fit_options(cfg) | {"model_config": model_config.to_dict(), "world": world})


def new_progress() -> dict[str, Any]:
    """Progress of a stage that has not started: epochs and batches done (of the current
    epoch), optimizer steps, one metrics row per epoch, the current epoch's running sums
    and every ``--resume-lr`` change."""
    return {"epoch": 0, "batch": 0, "step": 0, "metrics": [], "epoch_sums": None, "lr_changes": []}


def fit(model: nn.Module, stage_dir: Path, epochs: int, cfg: TrainConfig, rt: Runtime, train_set: Dataset,
        val_set: Dataset, resume: bool) -> dict:
    """Train ``model`` for ``epochs`` with AdamW + warm-up/cosine; checkpoints in ``stage_dir``.

    Returns the progress (``finished`` when every epoch ran). Stops with ``NonFiniteLoss``
    when the loss, weights or optimizer state become NaN or infinite; the last checkpoint,
    whose tensors are all finite, is kept.
    """
    model.to(rt.device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    objective = Objective(model, hasattr(model, "topo_loss"))
    wrapped = DistributedDataParallel(objective, device_ids=[rt.device.index] if rt.device.type == "cuda" else None) \
        if rt.world > 1 else objective
    seeded = SeededItems(train_set, cfg.seed)
    sampler = ResumableSampler(seeded, num_replicas=rt.world, rank=rt.rank, shuffle=True, seed=cfg.seed, drop_last=True)
    loader_len = steps_per_epoch(len(train_set), rt.world, cfg.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(epochs * loader_len, round(cfg.warmup_epochs * loader_len)))
    use_amp = cfg.amp and rt.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    generator = torch.Generator().manual_seed(cfg.seed * 7919 + rt.rank)  # STC clusters differ per rank
    state = TrainingState(stage_dir)
    run_config = checkpoint_config(cfg, model.config, rt.world)
    checkpoint, new_lr, skipped = resume_point(stage_dir, run_config, cfg, resume)
    progress = new_progress()
    kept: Optional[int] = None  # the step of the checkpoint on disk
    if checkpoint is not None:
        progress |= state.load(checkpoint, model, optimizer, scheduler, scaler, generator)
        kept = progress["step"]
        if rt.main:
            for reason in skipped:
                print(f"skipped checkpoint {reason}", flush=True)
            print(f"resumed {checkpoint.model_path} at epoch {progress['epoch']} step {progress['step']}", flush=True)
    if cfg.resume_lr is not None and new_lr is None and rt.main:
        print(f"{stage_dir.name}: did not stop on a non-finite value, so --resume-lr does not apply; it continues "
              f"with learning rate {base_lr(scheduler):g}", flush=True)
    if new_lr is not None:
        if rt.main:
            print(f"{stage_dir.name}: learning rate {base_lr(scheduler):g} -> {new_lr:g} from step "
                  f"{progress['step']} (--resume-lr)", flush=True)
        set_base_lr(optimizer, scheduler, new_lr)
        progress["lr_changes"].append({"step": progress["step"], "lr": new_lr})
    if rt.main and progress["metrics"]:
        write_metrics(stage_dir, progress["metrics"])
    model.train()

    def halt(what: str) -> None:
        if rt.main:
            state.mark_stopped(what, progress)
        where = f"the last checkpoint (step {kept}, finite) in {stage_dir} is kept" if kept is not None \
            else f"no checkpoint had been written in {stage_dir}"
        raise NonFiniteLoss(f"{what}; stopped, {where}. Continue with a lower learning rate: the same command "
                            f"with --resume --resume-lr X (X < {base_lr(scheduler):g}), or try smaller "
                            "--alpha/--beta in a new --out")

    def save(meter: Optional[EpochMeter]) -> None:
        nonlocal kept
        if not rt.all_true(finite(model, optimizer)):
            halt(f"the weights or optimizer state became non-finite by epoch {progress['epoch'] + 1}, "
                 f"step {progress['step']}")
        progress["epoch_sums"] = meter.state() if meter is not None else None
        if rt.main:
            state.save(model, optimizer, scheduler, scaler, generator, progress, run_config)
        kept = progress["step"]
        rt.barrier()

    last_save = time.monotonic()
    stop = False
    for epoch in range(progress["epoch"], epochs):
        seeded.epoch = epoch
        sampler.set_epoch(epoch)
        sampler.skip = progress["batch"] * cfg.batch_size
        loader = DataLoader(seeded, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                            drop_last=True, pin_memory=rt.device.type == "cuda")
        meter = EpochMeter(progress["epoch_sums"])
        bar = tqdm(loader, desc=f"{stage_dir.name} epoch {epoch + 1}/{epochs}", disable=not rt.main,
                   initial=progress["batch"], total=loader_len)
        for images, labels in bar:
            images, labels = images.to(rt.device, non_blocking=True), labels.to(rt.device, non_blocking=True)
            if cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(rt.device.type, enabled=use_amp):
                loss, logits, logs = wrapped(images, labels, generator)
            if not rt.all_true(bool(torch.isfinite(loss.detach()))):
                halt(f"loss became {loss.item()} at epoch {epoch + 1}, step {progress['step']}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            progress["batch"] += 1
            progress["step"] += 1
            logs["loss"] = loss.detach()
            logs["acc"] = (logits.argmax(1) == labels).float().mean() * 100
            meter.add(logs)
            bar.set_postfix({k: f"{v:.3g}" for k, v in meter.means().items()})
            if cfg.max_steps is not None and progress["step"] >= cfg.max_steps:
                stop = True
                break
            if time.monotonic() - last_save > cfg.checkpoint_minutes * 60:
                save(meter)
                last_save = time.monotonic()
        if stop and progress["batch"] < loader_len:
            save(meter)
            break
        row = meter.row(epoch + 1, progress["step"], optimizer.param_groups[0]["lr"])
        if rt.main:
            row["val_acc"] = top1_accuracy(model, val_set, cfg.batch_size, rt.device, cfg.workers)
            print(json.dumps(row), flush=True)
        progress.update(epoch=epoch + 1, batch=0)
        progress["metrics"].append(row)
        save(None)
        if rt.main:
            write_metrics(stage_dir, progress["metrics"])
        if stop:
            break
    progress["finished"] = progress["epoch"] >= epochs
    if rt.world > 1:
        progress["rank_fingerprints"] = rank_fingerprints(model)
    return progress
