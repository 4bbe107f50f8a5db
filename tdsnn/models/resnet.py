"""ResNet-18 in time-major layout, shared by the ANN and spiking variants.

Every module maps ``[T, B, ...] -> [T, B, ...]``. Spiking models run T timesteps with
LIF activations; ANNs are the same network with ReLU and T = 1, so that analyses,
hooks and the Brain-Score wrapper treat both alike. Module and parameter names follow
torchvision's ``resnet18`` (and spikingjelly's ``spiking_resnet18``), so their
state_dicts load 1:1; activations are named ``act1``/``act2``. With ``config.blurpool``
the strided convs become ``BlurPoolConv2d`` (``<name>.conv``, ``<name>.blur_filter``), the
layout of TopoNets' published weights.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from spikingjelly.activation_based import layer

from ..config import BLOCKS, ModelConfig
from ..sheets import BLOCK_AREAS
from .backbone import Backbone, as_sequence, scaled_widths

Activation = Callable[[], nn.Module]


class BlurPoolConv2d(nn.Module):
    """A fixed depthwise 3x3 binomial blur ([1, 2, 1] x [1, 2, 1] / 16, stride 1, zero
    padding 1) followed by ``conv``, which keeps its own stride. ``[T, B, C, H, W] -> [T, B, C', H', W']``.

    ``blur_filter`` ``[C, 1, 3, 3]`` is a buffer, so it is part of the state_dict.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv
        binomial = torch.tensor([1.0, 2.0, 1.0])
        kernel = torch.outer(binomial, binomial) / 16
        self.register_buffer("blur_filter", kernel.expand(conv.in_channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blurred = F.conv2d(x.flatten(0, 1), self.blur_filter, padding=1, groups=self.conv.in_channels)
        return self.conv(blurred.unflatten(0, x.shape[:2]))


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int, blurpool: bool = False) -> nn.Module:
    conv = layer.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2, bias=False, step_mode="m")
    return BlurPoolConv2d(conv) if blurpool and stride > 1 and in_ch >= 16 else conv


def _bn(ch: int) -> nn.Module:
    return layer.BatchNorm2d(ch, step_mode="m")


class BasicBlock(nn.Module):
    """conv3x3-BN-act-conv3x3-BN, residual add, act. Input/output ``[T, B, C, H, W]``."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, activation: Activation, blurpool: bool = False):
        super().__init__()
        self.conv1 = _conv(in_ch, out_ch, 3, stride, blurpool)
        self.bn1 = _bn(out_ch)
        self.act1 = activation()
        self.conv2 = _conv(out_ch, out_ch, 3, 1)
        self.bn2 = _bn(out_ch)
        self.downsample: Optional[nn.Module] = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(_conv(in_ch, out_ch, 1, stride, blurpool), _bn(out_ch))
        self.act2 = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + identity)


class ResNet18(Backbone):
    """ResNet-18 with a width multiplier and an ``imagenet`` or ``small`` stem.

    ``forward(x)`` takes images ``[B, C, H, W]`` (direct encoding: the same image at
    every timestep) or per-timestep inputs ``[T, B, C, H, W]`` and returns logits
    ``[B, num_classes]`` averaged over T. Blocks: the 8 residual blocks ``layer1.0`` ...
    ``layer4.1`` (``tdsnn.sheets.BLOCK_AREAS``).
    """

    block_areas = BLOCK_AREAS

    def __init__(self, config: ModelConfig, activation: Activation):
        super().__init__(config)
        if activation is relu and config.timesteps is not None:
            raise ValueError(f"{config.arch} is an ANN: timesteps must be None, got {config.timesteps}")
        widths = scaled_widths((64, 128, 256, 512), config.width)
        if config.stem == "imagenet":
            self.conv1 = _conv(config.in_channels, widths[0], 7, 2, config.blurpool)
            self.maxpool = layer.MaxPool2d(3, 2, 1, step_mode="m")
        else:
            self.conv1 = _conv(config.in_channels, widths[0], 3, 1)
            self.maxpool = nn.Identity()
        self.bn1 = _bn(widths[0])
        self.act1 = activation()
        in_ch = widths[0]
        for stage, out_ch in enumerate(widths, start=1):
            stride = 1 if stage == 1 else 2
            blocks = [BasicBlock(in_ch, out_ch, stride, activation, config.blurpool),
                      BasicBlock(out_ch, out_ch, 1, activation)]
            self.add_module(f"layer{stage}", nn.Sequential(*blocks))
            in_ch = out_ch
        self.avgpool = layer.AdaptiveAvgPool2d((1, 1), step_mode="m")
        self.fc = layer.Linear(in_ch, config.num_classes, step_mode="m")

    def _stem_drive(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` or ``[T, B, C, H, W]`` -> input of the stem neurons, ``[1 or T, B, C', H', W']``.

        With direct encoding the T input frames are identical, so conv1 and bn1 are
        computed once, for a T-th of the cost (BN statistics over T identical copies
        equal those over one copy).
        """
        return self.bn1(self.conv1(as_sequence(x)))

    def _body(self, drive: torch.Tensor) -> tuple[torch.Tensor, "OrderedDict[str, torch.Tensor]"]:
        """Stem neurons onwards: ``[T', B, ...]`` -> logits ``[T', B, classes]`` and the 8
        residual-block outputs (spikes for spiking models, ReLU activations for ANNs)."""
        out = self.maxpool(self.act1(drive))
        blocks: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        for name in BLOCKS:
            stage, index = name.split(".")
            out = getattr(self, stage)[int(index)](out)
            blocks[name] = out
        return self._readout(out), blocks


def relu() -> nn.Module:
    return nn.ReLU(inplace=True)
