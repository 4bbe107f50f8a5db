"""TopoNet-ResNet-18: ANN ResNet-18 with TopoLoss on every block conv (Deb et al., ICLR 2025)."""
from __future__ import annotations

from typing import Mapping, Optional

import torch
from topoloss import LaplacianPyramid, TopoLoss
from topoloss.cortical_sheet.common import find_cortical_sheet_size

from ..config import ModelConfig
from .resnet import BlurPoolConv2d, ResNet18, relu


def topoloss_layers(model: torch.nn.Module) -> list[str]:
    """Names of conv1 and conv2 of every BasicBlock, in forward order (``<name>.conv``
    where a conv is wrapped in a ``BlurPoolConv2d``)."""
    modules = dict(model.named_modules())
    names = [f"{stage}.{i}.{conv}" for stage in ("layer1", "layer2", "layer3", "layer4")
             for i in range(len(getattr(model, stage))) for conv in ("conv1", "conv2")]
    return [f"{name}.conv" if isinstance(modules[name], BlurPoolConv2d) else name for name in names]


class TopoNetResNet18(ResNet18):
    """ResNet-18 whose block convs are laid out on cortical sheets by the ``topoloss`` package.

    ``topo_loss`` returns tau * (1 - cos(weights, blurred weights)) averaged over the
    16 block convs, as ``TopoLoss.compute``; factor is the down/up-sampling factor.
    """

    def __init__(self, config: ModelConfig):
        if config.topoloss is None:
            raise ValueError(f"{config.arch} needs topoloss options")
        super().__init__(config, relu)
        modules = dict(self.named_modules())
        for name in topoloss_layers(self):
            sheet = find_cortical_sheet_size(modules[name].out_channels)
            if min(sheet.height, sheet.width) < config.topoloss.factor:
                raise ValueError(f"{name} has {modules[name].out_channels} channels, a {sheet.height}x{sheet.width} "
                                 f"cortical sheet smaller than the topoloss factor {config.topoloss.factor}; "
                                 "use a larger width or a smaller factor")
        self.topoloss = TopoLoss(losses=[
            LaplacianPyramid.from_layer(self, modules[name], factor_h=config.topoloss.factor,
                                        factor_w=config.topoloss.factor, scale=config.topoloss.tau)
            for name in topoloss_layers(self)
        ])

    def topo_loss(self, blocks: Optional[Mapping[str, torch.Tensor]] = None,
                  generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, dict[str, float]]:
        """TopoLoss on the current weights (the block outputs and generator of the STC interface are unused)."""
        total = self.topoloss.compute(model=self)
        return total, {"topoloss": float(total.detach())}
