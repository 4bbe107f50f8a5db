"""SResNet18: spiking ResNet-18 with multi-step LIF neurons (docs/method.md §1)."""
from __future__ import annotations

from torch import nn
from spikingjelly.activation_based import neuron, surrogate

from ..config import ModelConfig, NeuronConfig
from .resnet import ResNet18


def lif(config: NeuronConfig) -> nn.Module:
    """spikingjelly's multi-step LIF: input current ``[T, B, ...]`` -> spikes ``[T, B, ...]``.

    H[t] = V[t-1] + (X[t] - (V[t-1] - V_reset)) / tau (decay_input), S[t] = H[t] >= V_th,
    hard reset to V_reset, ATan surrogate gradient.
    """
    return neuron.LIFNode(tau=float(config.tau), decay_input=config.decay_input, v_threshold=config.v_threshold,
                          v_reset=config.v_reset, surrogate_function=surrogate.ATan(alpha=config.surrogate_alpha),
                          detach_reset=config.detach_reset, step_mode="m")


def check_spiking(config: ModelConfig) -> None:
    """Spiking architectures need ``timesteps`` and ``neuron`` options."""
    if config.timesteps is None or config.neuron is None:
        raise ValueError(f"{config.arch} needs timesteps and neuron options")


class SResNet18(ResNet18):
    """Spiking ResNet-18: LIF after the stem BN, after bn1 of each block and after each residual add.

    Topology and parameter names equal spikingjelly's ``spiking_resnet18``.
    """

    def __init__(self, config: ModelConfig):
        check_spiking(config)
        super().__init__(config, lambda: lif(config.neuron))
