"""What every tdsnn architecture shares: time-major blocks, T, the probe of block sizes.

Every architecture maps images ``[B, C, H, W]`` (direct encoding: the same image at
every timestep) or per-timestep inputs ``[T, B, C, H, W]`` to logits ``[B, classes]``
averaged over T, and exposes:

- ``block_names``: names of the recorded block outputs in forward order (module names, so
  Brain-Score can hook them), and ``block_areas``: block -> cortical area of its sheet
  (``tdsnn.sheets.AREAS``);
- ``forward_blocks(x)``: logits and ``{block: [T, B, C, H, W]}`` (spikes in {0, 1} for
  spiking models), flat unit order ``c*H*W + h*W + w``;
- ``forward_stepwise(x)``: the same logits one timestep at a time (forward hooks see
  ``[1, B, ...]`` per step), for inference;
- ``avgpool`` (the pooled features ``[T, B, C, 1, 1]``, Brain-Score's behavioural readout)
  and ``fc`` (the classifier);
- ``timesteps``, ``is_spiking``, ``set_timesteps``, ``block_dims``, and
  ``recurrent_in_time`` (True where an area feeds itself across timesteps).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

import torch
from torch import nn
from spikingjelly.activation_based import functional

from ..config import ModelConfig


def scaled_widths(widths: tuple[int, ...], width: float) -> list[int]:
    """Channel counts ``widths`` times the multiplier ``width`` (at least 1 each)."""
    return [max(1, round(w * width)) for w in widths]


def as_sequence(x: torch.Tensor) -> torch.Tensor:
    """Images ``[B, C, H, W]`` -> ``[1, B, C, H, W]``; ``[T, B, C, H, W]`` unchanged."""
    if x.ndim == 4:
        return x.unsqueeze(0)
    if x.ndim != 5:
        raise ValueError(f"expected input [B, C, H, W] or [T, B, C, H, W], got shape {tuple(x.shape)}")
    return x


class Backbone(nn.Module):
    """Base of every architecture: config, T, the block-size probe and, for networks
    without recurrence in time, ``forward_blocks`` / ``forward_stepwise``.

    Subclasses set ``block_areas`` (block name -> area, in forward order) and implement
    ``_stem_drive(x) -> [1 or T, B, ...]`` (the input of the first neurons; computed once
    for direct encoding) and ``_body(drive [T', B, ...]) -> (logits [T', B, classes],
    {block: [T', B, C, H, W]})``; a network with recurrence in time overrides
    ``forward_blocks`` and ``forward_stepwise`` instead.
    """

    block_areas: Mapping[str, str]
    #: True for networks with recurrence in time (their later steps see earlier ones).
    recurrent_in_time = False

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config

    @property
    def block_names(self) -> tuple[str, ...]:
        """Recorded block outputs, in forward order."""
        return tuple(self.block_areas)

    @property
    def timesteps(self) -> int:
        """Timesteps per forward (1 for ANNs)."""
        return self.config.timesteps or 1

    @property
    def is_spiking(self) -> bool:
        return self.config.timesteps is not None

    def set_timesteps(self, timesteps: int) -> None:
        """Change T for inference (e.g. entropy at several T); spiking models only."""
        if not self.is_spiking:
            raise ValueError(f"{self.config.arch} is not a spiking model")
        self.config = self.config.replace(timesteps=timesteps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_blocks(x)[0]

    def _readout(self, features: torch.Tensor) -> torch.Tensor:
        """Last block's output ``[T', B, C, H, W]`` -> logits ``[T', B, classes]`` (avgpool, fc)."""
        return self.fc(self.avgpool(features).flatten(2))

    def forward_blocks(self, x: torch.Tensor) -> tuple[torch.Tensor, "OrderedDict[str, torch.Tensor]"]:
        """Logits ``[B, num_classes]`` (mean over T) and the block outputs ``{name: [T, B, C, H, W]}``.

        Neuron state is reset first, so results never depend on a previous batch.
        """
        functional.reset_net(self)
        drive = self._stem_drive(x)
        if drive.shape[0] == 1:
            drive = drive.expand(self.timesteps, *drive.shape[1:])
        logits, blocks = self._body(drive)
        return logits.mean(0), blocks

    def forward_stepwise(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` computed one timestep at a time, for inference.

        Neuron state carries over between steps, so in eval mode the logits equal
        ``forward``'s, but memory does not grow with T; forward hooks fire once per
        step with ``[1, B, ...]`` outputs. (In train mode BN would use per-step
        statistics.)
        """
        functional.reset_net(self)
        drive = self._stem_drive(x)
        logits = 0
        for t in range(self.timesteps):
            logits = logits + self._body(drive[t if drive.shape[0] > 1 else 0].unsqueeze(0))[0][0]
        functional.reset_net(self)
        return logits / self.timesteps

    def block_dims(self) -> "OrderedDict[str, tuple[int, int, int]]":
        """(C, H, W) of each block output at ``config.input_size``, from a probe forward at T = 1."""
        was_training = self.training
        self.eval()
        probe = torch.zeros(1, self.config.in_channels, self.config.input_size, self.config.input_size,
                            device=next(self.parameters()).device)
        saved = self.config
        try:
            if self.is_spiking:
                self.config = saved.replace(timesteps=1)
            with torch.no_grad():
                _, blocks = self.forward_blocks(probe)
        finally:
            self.config = saved
            self.train(was_training)
            functional.reset_net(self)
        return OrderedDict((name, tuple(t.shape[2:])) for name, t in blocks.items())
