"""The learning-rate schedule: linear warm-up, then cosine decay to 0 (docs/method.md §4)."""
from __future__ import annotations

import math

import torch


def cosine_with_warmup(total_steps: int, warmup_steps: int):
    """The factor of the base learning rate after ``step`` optimizer steps."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


def base_lr(scheduler: torch.optim.lr_scheduler.LambdaLR) -> float:
    """The learning rate the schedule scales (before warm-up and decay)."""
    return scheduler.base_lrs[0]


def set_base_lr(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR, lr: float) -> None:
    """Rescale the schedule to base learning rate ``lr`` from the current step on."""
    scheduler.base_lrs = [lr] * len(optimizer.param_groups)
    for group, factor in zip(optimizer.param_groups, scheduler.lr_lambdas):
        group["initial_lr"] = lr
        group["lr"] = lr * factor(scheduler.last_epoch)
