"""Architectures by name: each maps a ``ModelConfig`` to a model (interface: ``backbone.Backbone``)."""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..config import ModelConfig
from .cornet import SCornet, TSCornet
from .resnet import ResNet18, relu
from .sresnet import SResNet18
from .spikformer import Spikformer, TSpikformer
from .toponet import TopoNetResNet18
from .tsresnet import TSResNet18


def _ann_resnet18(config: ModelConfig) -> ResNet18:
    return ResNet18(config, relu)


ARCHITECTURES: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "resnet18": _ann_resnet18,
    "toponet_resnet18": TopoNetResNet18,
    "sresnet18": SResNet18,
    "tsresnet18": TSResNet18,
    "scornet": SCornet,
    "tscornet": TSCornet,
    "spikformer": Spikformer,
    "tspikformer": TSpikformer,
}

#: The non-topographic twin of each topographic spiking architecture: the auxiliary SNN
#: whose grating rates drive its swap pre-optimization, and its baseline in comparisons.
TWINS: dict[str, str] = {"tsresnet18": "sresnet18", "tscornet": "scornet", "tspikformer": "spikformer"}

__all__ = ["ARCHITECTURES", "TWINS", "ResNet18", "SCornet", "SResNet18", "Spikformer", "TSCornet", "TSResNet18",
           "TSpikformer", "TopoNetResNet18"]
