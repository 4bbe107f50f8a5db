"""Spikformer / TSpikformer: a spiking vision transformer (Zhou et al., ICLR 2023) and its TDSNN.

Spikformer-4-384 with 12 heads and MLP ratio 4, the configuration of spikingjelly's
``spikformer_cifar10``; with equal weights (``convert_spikingjelly_state_dict``) the two
give equal logits.

- Spiking patch splitting (``patch_embed``): four conv3x3-BN-LIF stages of
  embed/8, embed/4, embed/2, embed channels, with a 3x3/2 max-pool after BN of the last
  two stages (stem ``"small"``: patch 4, for 32 px data) or of all four (stem
  ``"imagenet"``: patch 16), then a conv3x3-BN-LIF relative position embedding added to
  its input.
- 4 blocks ``x = x + SSA(x); x = x + MLP(x)`` on tokens ``[T, B, C, L]``, L = H * W
  patches. Spiking self-attention (SSA): q, k, v = LIF(BN(1x1 conv)); per head
  ``(v k^T) q * 0.125``, LIF with threshold 0.5; then the linear projection
  ``proj`` (1x1 conv), BN and LIF. MLP: two 1x1 conv-BN-LIF layers, hidden 4 * embed.
- Readout: the mean over tokens of the last block's output (``avgpool``), ``fc``,
  logits averaged over T.

embed = 384 * ``config.width``, rounded to a multiple of 24 (12 heads, stem dims embed/8).

Blocks (recorded, and in TSpikformer constrained, outputs): ``blocks.<i>.attn``, the
spikes of the linear projection that follows block i's SSA, ``[T, B, C, H, W]`` with
(H, W) the patch grid, so channel-major units lay out on the sheet retinotopically by
patch position.

Default region map (the registry's ``region_layer_map``; a variant may override it):
the blocks are spread over V1, V2, V4, IT in depth order, block i in
``REGIONS[4 i // depth]``; each region maps to its first block, so with depth 4
V1 = ``blocks.0.attn``, V2 = ``blocks.1.attn``, V4 = ``blocks.2.attn``,
IT = ``blocks.3.attn``. Upstream Brain-Score has no fixed rule for transformers:
a plugin commits one layer per region, either hand-picked (e.g. a late block such as
``blocks.10.norm1`` for IT in ViT-S) or chosen by ``LayerSelection`` on the standard
public benchmarks (FreemanZiemba2013 V1/V2, MajajHong2015 V4/IT) and stored in its
``region_layer_map`` JSON; a scored variant can record such a selection as its map.
The same depth order gives TSpikformer's sheet areas.
"""
from __future__ import annotations

import dataclasses
import re
from collections import OrderedDict
from typing import Mapping

import torch
from torch import nn
from spikingjelly.activation_based import layer

from ..config import ModelConfig
from ..regions import REGIONS
from .backbone import Backbone, as_sequence
from .sresnet import check_spiking, lif
from .topographic_snn import TopographicSNN

#: Spikformer-4-384 at width 1.
DEPTH, EMBED, HEADS, MLP_RATIO = 4, 384, 12, 4
#: SSA's fixed attention scale and the threshold of its attention neurons.
ATTENTION_SCALE, ATTENTION_THRESHOLD = 0.125, 0.5
#: Patch size of each stem.
PATCH = {"small": 4, "imagenet": 16}


def embed_dim(width: float) -> int:
    """384 * width, rounded to a multiple of 24 (>= 24)."""
    return max(1, round(EMBED * width / 24)) * 24


class ConvBNLIF(nn.Module):
    """conv3x3 (no bias) - BN - [max-pool 3x3/2] - LIF on ``[T, B, C, H, W]``; ``drive`` is
    everything before the LIF."""

    def __init__(self, in_ch: int, out_ch: int, pool: bool, config: ModelConfig):
        super().__init__()
        self.conv = layer.Conv2d(in_ch, out_ch, 3, padding=1, bias=False, step_mode="m")
        self.bn = layer.BatchNorm2d(out_ch, step_mode="m")
        self.pool = layer.MaxPool2d(3, 2, 1, step_mode="m") if pool else nn.Identity()
        self.act = lif(config.neuron)

    def drive(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.bn(self.conv(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drive(x))


class PatchEmbedding(nn.Module):
    """Spiking patch splitting: images ``[T, B, 3, S, S]`` -> spikes + position embedding
    ``[T, B, embed, S / patch, S / patch]`` (values in {0, 1, 2})."""

    def __init__(self, config: ModelConfig, dim: int):
        super().__init__()
        dims = [dim // 8, dim // 4, dim // 2, dim]
        first_pooled = 2 if PATCH[config.stem] == 4 else 0
        ins = [config.in_channels, *dims[:-1]]
        self.stages = nn.Sequential(*[ConvBNLIF(i, o, k >= first_pooled, config)
                                      for k, (i, o) in enumerate(zip(ins, dims))])
        self.rpe = ConvBNLIF(dim, dim, False, config)

    def forward_from_drive(self, drive: torch.Tensor) -> torch.Tensor:
        """From the drive of the first stage's neurons on (see ``ConvBNLIF.drive``)."""
        x = self.stages[1:](self.stages[0].act(drive))
        return x + self.rpe(x)


class SpikingSelfAttention(nn.Module):
    """SSA on tokens ``[T, B, C, L]`` -> spikes ``[T, B, C, L]`` of the projection ``proj``."""

    def __init__(self, dim: int, config: ModelConfig):
        super().__init__()
        self.heads = HEADS
        self.qkv = layer.Conv1d(dim, 3 * dim, 1, bias=False, step_mode="m")
        self.qkv_bn = layer.BatchNorm1d(3 * dim, step_mode="m")
        self.qkv_act = lif(config.neuron)
        self.attn_act = lif(dataclasses.replace(config.neuron, v_threshold=ATTENTION_THRESHOLD))
        self.proj = layer.Conv1d(dim, dim, 1, bias=False, step_mode="m")
        self.proj_bn = layer.BatchNorm1d(dim, step_mode="m")
        self.proj_act = lif(config.neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, c, n = x.shape
        q, k, v = self.qkv_act(self.qkv_bn(self.qkv(x))).view(t, b, 3, self.heads, c // self.heads, n).unbind(2)
        attended = (v @ k.transpose(-2, -1)) @ q * ATTENTION_SCALE  # [T, B, heads, C / heads, L]
        attended = self.attn_act(attended).reshape(t, b, c, n)
        return self.proj_act(self.proj_bn(self.proj(attended)))


class MLP(nn.Module):
    """Two 1x1 conv-BN-LIF layers on tokens ``[T, B, C, L]`` (hidden ``MLP_RATIO * C``)."""

    def __init__(self, dim: int, config: ModelConfig):
        super().__init__()
        hidden = MLP_RATIO * dim
        self.fc1 = layer.Conv1d(dim, hidden, 1, bias=False, step_mode="m")
        self.fc1_bn = layer.BatchNorm1d(hidden, step_mode="m")
        self.fc1_act = lif(config.neuron)
        self.fc2 = layer.Conv1d(hidden, dim, 1, bias=False, step_mode="m")
        self.fc2_bn = layer.BatchNorm1d(dim, step_mode="m")
        self.fc2_act = lif(config.neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2_act(self.fc2_bn(self.fc2(self.fc1_act(self.fc1_bn(self.fc1(x))))))


class Block(nn.Module):
    """``attn`` (SSA) and ``mlp``; ``Spikformer._body`` applies them with their residuals."""

    def __init__(self, dim: int, config: ModelConfig):
        super().__init__()
        self.attn = SpikingSelfAttention(dim, config)
        self.mlp = MLP(dim, config)


def block_region(index: int, depth: int) -> str:
    """Region of block ``index`` of ``depth``: the blocks spread over V1, V2, V4, IT in order."""
    return REGIONS[len(REGIONS) * index // depth]


class Spikformer(Backbone):
    """Spiking vision transformer (see the module docstring); ``config.input_size`` must be
    a multiple of the patch size."""

    block_areas = {f"blocks.{i}.attn": block_region(i, DEPTH) for i in range(DEPTH)}

    def __init__(self, config: ModelConfig):
        check_spiking(config)
        if config.input_size % PATCH[config.stem]:
            raise ValueError(f"{config.arch}: input_size {config.input_size} is not a multiple of the "
                             f"{config.stem!r} stem's patch size {PATCH[config.stem]}")
        super().__init__(config)
        dim = embed_dim(config.width)
        self.patch_embed = PatchEmbedding(config, dim)
        self.blocks = nn.ModuleList([Block(dim, config) for _ in range(DEPTH)])
        self.avgpool = layer.AdaptiveAvgPool2d((1, 1), step_mode="m")
        self.fc = layer.Linear(dim, config.num_classes, step_mode="m")

    def _stem_drive(self, x: torch.Tensor) -> torch.Tensor:
        """The first stem stage up to its neurons, on ``[1 or T, B, C, H, W]``; computed once
        for direct encoding."""
        return self.patch_embed.stages[0].drive(as_sequence(x))

    def _body(self, drive: torch.Tensor) -> tuple[torch.Tensor, "OrderedDict[str, torch.Tensor]"]:
        x = self.patch_embed.forward_from_drive(drive)
        grid = x.shape[3:]
        tokens = x.flatten(3)
        blocks: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        for name, block in zip(self.block_areas, self.blocks):
            attended = block.attn(tokens)
            blocks[name] = attended.unflatten(3, grid)
            tokens = tokens + attended
            tokens = tokens + block.mlp(tokens)
        return self._readout(tokens.unflatten(3, grid)), blocks


def convert_spikingjelly_state_dict(state: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """A state_dict of spikingjelly's ``Spikformer`` (``activation_based.model.spikformer``)
    with this module's parameter names."""
    rules = [
        (r"patch_embed\.stages\.(\d+)\.conv_bn\.block\.0\.", r"patch_embed.stages.\1.conv."),
        (r"patch_embed\.stages\.(\d+)\.conv_bn\.block\.1\.", r"patch_embed.stages.\1.bn."),
        (r"patch_embed\.positional_encoding\.conv_bn\.block\.0\.", "patch_embed.rpe.conv."),
        (r"patch_embed\.positional_encoding\.conv_bn\.block\.1\.", "patch_embed.rpe.bn."),
        (r"blocks\.(\d+)\.attn\.qkv_conv_bn\.0\.", r"blocks.\1.attn.qkv."),
        (r"blocks\.(\d+)\.attn\.qkv_conv_bn\.1\.", r"blocks.\1.attn.qkv_bn."),
        (r"blocks\.(\d+)\.attn\.proj_conv_bn\.0\.", r"blocks.\1.attn.proj."),
        (r"blocks\.(\d+)\.attn\.proj_conv_bn\.1\.", r"blocks.\1.attn.proj_bn."),
        (r"blocks\.(\d+)\.mlp\.fc(\d)\.0\.", r"blocks.\1.mlp.fc\2."),
        (r"blocks\.(\d+)\.mlp\.fc(\d)\.1\.", r"blocks.\1.mlp.fc\2_bn."),
        (r"head\.", "fc."),
    ]
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for key, value in state.items():
        for pattern, replacement in rules:
            new, hits = re.subn("^" + pattern, replacement, key)
            if hits:
                out[new] = value
                break
        else:
            raise KeyError(f"no Spikformer parameter for spikingjelly's {key!r}")
    return out


class TSpikformer(TopographicSNN, Spikformer):
    """Topographic Spikformer: a cortical sheet on each SSA projection output
    (``blocks.<i>.attn``), of its region's TDANN size, retinotopic by patch position;
    trained with STC."""
