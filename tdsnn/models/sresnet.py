"""SResNet18: spiking ResNet-18 with multi-step LIF neurons (METHOD.md §1)."""
from __future__ import annotations

from ..config import ModelConfig
from .lif import LIFNode
from .resnet import ResNet18


class SResNet18(ResNet18):
    """Spiking ResNet-18: LIF after the stem BN, after bn1 of each block and after each residual add.

    Topology and parameter names equal spikingjelly's ``spiking_resnet18``.
    """

    def __init__(self, config: ModelConfig):
        if config.timesteps is None or config.neuron is None:
            raise ValueError(f"{config.arch} needs timesteps and neuron options")
        super().__init__(config, lambda: LIFNode(config.neuron))
