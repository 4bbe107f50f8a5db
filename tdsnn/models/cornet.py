"""SCornet / TSCornet: a spiking CORnet-RT (Kubilius et al. 2019) and its TDSNN.

Four areas V1 -> V2 -> V4 -> IT, each a recurrent block (``RecurrentArea``):

    input[t]  = LIF_in(GN(conv_input(previous area's spikes at t - 1)))   (V1: the image)
    output[t] = LIF(GN(conv1(input[t] + output[t - 1])))

unrolled over T timesteps (T = 10 by default) with the image presented at every step.
As in CORnet-RT, an area above V1 has no input at t = 0 (nothing has arrived yet) and
sees the previous area's output of step t - 1, so IT first receives image information
at t = 3. The readout averages IT's spikes over space, applies ``fc`` and averages the
logits over T. Normalisation is CORnet-RT's GroupNorm (32 groups, or gcd(32, C) for
narrow widths): per sample, so the result does not depend on how steps are batched and
``forward_stepwise`` equals ``forward`` in train mode too.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn
from spikingjelly.activation_based import base, functional, layer

from ..config import ModelConfig
from ..regions import REGIONS
from .backbone import Backbone, as_sequence, scaled_widths
from .sresnet import check_spiking, lif
from .topographic_snn import TopographicSNN

#: Channels of V1, V2, V4, IT at width 1 (CORnet-RT's).
WIDTHS = (64, 128, 256, 512)
#: CORnet-RT's GroupNorm group count.
GROUPS = 32


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(GROUPS, channels), channels)


def _per_step(fn, x: torch.Tensor) -> torch.Tensor:
    """Apply a single-step function ``[N, ...] -> [N, ...]`` to ``[T', B, ...]``, batching the T' steps."""
    return fn(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class RecurrentArea(base.MemoryModule):
    """One CORnet-RT area with LIF neurons; ``state`` is its output of the previous step.

    ``input_current(x)``: spikes (or the image) ``[T', B, C_in, H, W]`` -> input current
    ``[T', B, C, H', W']`` (conv_input, norm_input). ``forward(current)``: input current
    ``[T', B, C, H', W']`` -> output spikes ``[T', B, C, H', W']``, one step after another
    (the state carries over between calls until ``functional.reset_net``).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, config: ModelConfig):
        super().__init__()
        self.conv_input = nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2)
        self.norm_input = _group_norm(out_ch)
        self.act_input = lif(config.neuron)
        self.conv1 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.norm1 = _group_norm(out_ch)
        self.act1 = lif(config.neuron)
        self.register_memory("state", 0.0)

    def input_current(self, x: torch.Tensor) -> torch.Tensor:
        return _per_step(lambda v: self.norm_input(self.conv_input(v)), x)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        inputs = self.act_input(current)
        outputs = []
        for step in inputs:
            out = self.act1(self.norm1(self.conv1(step + self.state)).unsqueeze(0))
            self.state = out[0]
            outputs.append(out)
        return torch.cat(outputs)


def delayed_current(area: RecurrentArea, spikes: torch.Tensor) -> torch.Tensor:
    """Input current of ``area`` at steps 0..T-1 from the previous area's spikes ``[T, B, ...]``:
    step t gets the current of step t - 1, step 0 none (zeros)."""
    if len(spikes) == 1:
        return torch.zeros_like(area.input_current(spikes))
    current = area.input_current(spikes[:-1])
    return torch.cat([torch.zeros_like(current[:1]), current])


class SCornet(Backbone):
    """Spiking CORnet-RT. Blocks: the areas ``V1``, ``V2``, ``V4``, ``IT`` (module names;
    each output is its area's spikes ``[T, B, C, H, W]``).

    Widths 64-128-256-512 times ``config.width``. Stem ``"imagenet"``: V1's input conv
    is 7x7 stride 4 (CORnet-RT's, for 224 px); ``"small"``: 3x3 stride 1, for 32 px data.
    V2, V4 and IT take 3x3 stride-2 input convs.
    """

    block_areas = {region: region for region in REGIONS}
    recurrent_in_time = True

    def __init__(self, config: ModelConfig):
        check_spiking(config)
        super().__init__(config)
        widths = scaled_widths(WIDTHS, config.width)
        kernel, stride = (7, 4) if config.stem == "imagenet" else (3, 1)
        in_ch = config.in_channels
        for region, out_ch in zip(REGIONS, widths):
            self.add_module(region, RecurrentArea(in_ch, out_ch, kernel, stride, config))
            in_ch, kernel, stride = out_ch, 3, 2
        self.avgpool = layer.AdaptiveAvgPool2d((1, 1), step_mode="m")
        self.fc = layer.Linear(in_ch, config.num_classes, step_mode="m")

    def _areas(self) -> list[RecurrentArea]:
        return [getattr(self, region) for region in REGIONS]

    def _v1_current(self, x: torch.Tensor) -> torch.Tensor:
        """V1's input current ``[T, B, ...]``; for direct encoding computed once and repeated."""
        current = self.V1.input_current(as_sequence(x))
        return current.expand(self.timesteps, *current.shape[1:]) if len(current) == 1 else current

    def forward_blocks(self, x: torch.Tensor) -> tuple[torch.Tensor, "OrderedDict[str, torch.Tensor]"]:
        """Logits ``[B, num_classes]`` (mean over T) and each area's spikes ``{area: [T, B, C, H, W]}``,
        computed area after area. Neuron state is reset first."""
        functional.reset_net(self)
        v1, *higher = self._areas()
        spikes = v1(self._v1_current(x))
        blocks: "OrderedDict[str, torch.Tensor]" = OrderedDict(V1=spikes)
        for region, area in zip(REGIONS[1:], higher):
            spikes = area(delayed_current(area, spikes))
            blocks[region] = spikes
        return self._readout(spikes).mean(0), blocks

    def forward_stepwise(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` computed one timestep at a time (every area per step), for inference.

        Equal to ``forward``'s logits in train and eval mode; memory does not grow with
        T; forward hooks of an area fire once per step with ``[1, B, ...]`` outputs.
        """
        functional.reset_net(self)
        v1, *higher = self._areas()
        current = self._v1_current(x)
        logits, previous = 0, None
        for t in range(self.timesteps):
            spikes = v1(current[t:t + 1])
            outputs = [spikes]
            for k, area in enumerate(higher):
                spikes = area(delayed_current(area, spikes) if previous is None
                              else area.input_current(previous[k]))
                outputs.append(spikes)
            logits = logits + self._readout(spikes)[0]
            previous = outputs
        functional.reset_net(self)
        return logits / self.timesteps


class TSCornet(TopographicSNN, SCornet):
    """Topographic spiking CORnet-RT: one cortical sheet per area, of that area's TDANN
    size (V1 36.75 mm, V2 35 mm, V4 22.4 mm, IT 70 mm), retinotopic initial placement,
    trained with STC (CCG window W = max(1, T/2 - 1), 4 at T = 10)."""
