"""The order of training items: which indices each process sees, and each item's augmentation.

Both depend only on (seed, epoch, index), so a resumed run draws exactly the batches and
augmentations the uninterrupted run would, whatever the number of loader workers.
"""
from __future__ import annotations

import itertools

import torch
from torch.utils.data import Dataset, DistributedSampler

from .config import ConfigError


class SeededItems(Dataset):
    """Wraps a dataset so each item's random augmentation depends only on (seed, epoch, index)."""

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


def steps_per_epoch(items: int, world: int, batch_size: int) -> int:
    """Optimizer steps in one epoch of ``items`` images shared by ``world`` processes (full
    batches only); ``ConfigError`` when not even one batch fits."""
    steps = items // world // batch_size
    if steps == 0:
        raise ConfigError(f"batch size {batch_size} x {world} processes exceeds the {items} training images")
    return steps
