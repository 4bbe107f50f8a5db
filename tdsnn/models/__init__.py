"""Architectures by name: each maps a ``ModelConfig`` to a model."""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..config import ModelConfig
from .resnet import ResNet18, relu
from .sresnet import SResNet18
from .topographic import TSResNet18
from .toponet import TopoNetResNet18


def _ann_resnet18(config: ModelConfig) -> ResNet18:
    return ResNet18(config, relu)


ARCHITECTURES: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "resnet18": _ann_resnet18,
    "toponet_resnet18": TopoNetResNet18,
    "sresnet18": SResNet18,
    "tsresnet18": TSResNet18,
}

__all__ = ["ARCHITECTURES", "ResNet18", "SResNet18", "TSResNet18", "TopoNetResNet18"]
