"""The training objective: the task loss plus the model's topographic term."""
from __future__ import annotations

import torch
from torch import nn


class Objective(nn.Module):
    """Cross-entropy plus the model's topographic term (STC or TopoLoss) in one forward, so
    that DistributedDataParallel sees every parameter use.

    forward(images ``[B, 3, H, W]``, labels ``[B]``, generator) -> (loss, logits ``[B, classes]``
    detached, scalar logs: ``ce``, ``rate`` for spiking models, the topographic terms).
    """

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
