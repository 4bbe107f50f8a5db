"""Task accuracy."""
from __future__ import annotations

from typing import Union

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm


@torch.no_grad()
def top1_accuracy(model: torch.nn.Module, dataset: Dataset, batch_size: int = 128,
                  device: Union[str, torch.device] = "cpu", workers: int = 0, progress: bool = True) -> float:
    """Top-1 accuracy (%) of ``model`` on ``dataset`` of ``(image [3, S, S], label)`` pairs, in eval mode
    (the training flag is restored)."""
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
        for images, labels in tqdm(loader, desc="accuracy", leave=False, disable=not progress):
            logits = model(images.to(device))
            correct += int((logits.argmax(1).cpu() == labels).sum())
            total += len(labels)
    finally:
        model.train(was_training)
    return 100.0 * correct / max(1, total)
