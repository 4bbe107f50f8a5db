"""Small models for the tests: options that keep every architecture fast on a 2-core CPU."""
import torch

from tdsnn.models import ARCHITECTURES

#: Small overrides that keep every architecture fast on a 2-core CPU (ResNet and CORnet
#: widths 16-32-64-128, Spikformer embedding 96, 32 px inputs with the ``small`` stem).
TINY = dict(width=0.25, num_classes=5, input_size=32, stem="small")

#: Every implemented architecture (tests parametrized over it cover a new one unchanged).
ARCHS = sorted(ARCHITECTURES)


def make_firing(model: torch.nn.Module) -> torch.nn.Module:
    """Untrained spiking nets are silent in eval mode; scaled norms (weight 2, bias 0.6) make
    their neurons fire. Transformers (token BatchNorm1d after a narrow conv stem, sparse
    attention) need a drive nearer threshold: bias 0.9 for all their norms."""
    norms = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d,
                                                             torch.nn.GroupNorm))]
    bias = 0.9 if any(isinstance(m, torch.nn.BatchNorm1d) for m in norms) else 0.6
    for m in norms:
        m.weight.data.fill_(2.0)
        m.bias.data.fill_(bias)
    return model
