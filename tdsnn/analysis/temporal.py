"""Spike-time analyses of a layer's responses (docs/method.md §5): spike entropy."""
from __future__ import annotations

import math

import torch


def spike_entropy(spikes) -> float:
    """Mean over neurons of the binary entropy (bits) of each neuron's firing probability.

    spikes: ``[N, T, U]`` in {0, 1} (stimuli x timesteps x neurons, e.g. from
    ``block_spikes``); a neuron's probability p is its mean over stimuli and time, and
    H(p) = -p log2 p - (1 - p) log2 (1 - p) with 0 log 0 = 0.
    """
    s = torch.as_tensor(spikes)
    if s.ndim != 3:
        raise ValueError(f"expected spikes [N, T, U], got shape {tuple(s.shape)}")
    if s.numel() and (s.min() < 0 or s.max() > 1):
        raise ValueError("spikes must lie in [0, 1]")
    p = s.sum(dim=(0, 1), dtype=torch.float64) / (s.shape[0] * s.shape[1])
    q = 1 - p
    h = -(torch.special.xlogy(p, p) + torch.special.xlogy(q, q)) / math.log(2)
    return float(h.mean())
