"""Small models for the tests: options that keep every architecture fast on a 2-core CPU."""
import torch

from tdsnn.models import ARCHITECTURES

#: Small overrides that keep every architecture fast on a 2-core CPU.
TINY = dict(width=0.25, num_classes=5, input_size=32, stem="small")

#: Every implemented architecture (tests parametrized over it cover a new one unchanged).
ARCHS = sorted(ARCHITECTURES)


def make_firing(model: torch.nn.Module) -> torch.nn.Module:
    """Untrained spiking nets are silent in eval mode; scaled BN makes their neurons fire."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.fill_(2.0)
            m.bias.data.fill_(0.6)
    return model
