"""Accuracy against inference timesteps (the TDSNN paper's Fig. 1 right; docs/method.md §5):
a spiking model trained at its own T, evaluated at other T."""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch.utils.data import Dataset

from .accuracy import top1_accuracy

#: Inference T of the curve for feed-forward spiking networks (trained at T = 4).
FEEDFORWARD_TIMESTEPS = (1, 2, 4, 8, 16)
#: Inference T for networks with recurrence in time (SCornet, trained at T = 10, whose IT
#: first receives the image at step 3).
RECURRENT_TIMESTEPS = (2, 5, 10, 15, 20)


def inference_timesteps(model: torch.nn.Module) -> tuple[int, ...]:
    """The inference T of ``model``'s accuracy-vs-T curve: ``RECURRENT_TIMESTEPS`` for
    networks with recurrence in time, ``FEEDFORWARD_TIMESTEPS`` for the others."""
    return RECURRENT_TIMESTEPS if getattr(model, "recurrent_in_time", False) else FEEDFORWARD_TIMESTEPS


def accuracy_by_timesteps(model: torch.nn.Module, dataset: Dataset, timesteps: Sequence[int], batch_size: int = 128,
                          device: Union[str, torch.device] = "cpu", progress: bool = True) -> dict[int, float]:
    """Top-1 accuracy (%) of spiking ``model`` on ``dataset`` at each inference T of
    ``timesteps``: ``{T: accuracy}``. The model's own T is restored afterwards."""
    if not model.is_spiking:
        raise ValueError(f"{model.config.arch} is an ANN: it has no timesteps")
    if not timesteps or min(timesteps) < 1:
        raise ValueError(f"timesteps must be positive integers, got {list(timesteps)}")
    native = model.timesteps
    accuracy = {}
    try:
        for t in timesteps:
            model.set_timesteps(t)
            accuracy[t] = top1_accuracy(model, dataset, batch_size=batch_size, device=device, progress=progress)
    finally:
        model.set_timesteps(native)
    return accuracy
