"""Effective dimensionality of a layer's responses (docs/method.md §5)."""
from __future__ import annotations

import math

import torch

_CHUNK_ELEMENTS = 1 << 24  # float64 elements per chunk of the centred features


def effective_dimensionality(features) -> float:
    """(sum lambda)^2 / sum lambda^2 of the eigenvalues lambda of the covariance of
    ``features [N, U]`` (samples x units); NaN for constant features.

    Uses whichever of the N x N Gram matrix and the U x U scatter matrix is smaller
    (same nonzero eigenvalues), accumulated in float64 over chunks of the centred data.
    """
    x = torch.as_tensor(features)
    if x.ndim != 2:
        raise ValueError(f"expected features [N, U], got shape {tuple(x.shape)}")
    n, u = x.shape
    mean = x.mean(0, dtype=torch.float64)
    size = min(n, u)
    gram = torch.zeros(size, size, dtype=torch.float64)
    if u > n:  # N x N Gram matrix Xc Xc^T, over chunks of units
        step = max(1, _CHUNK_ELEMENTS // n)
        for i in range(0, u, step):
            c = x[:, i:i + step].double() - mean[i:i + step]
            gram += c @ c.T
    else:  # U x U scatter matrix Xc^T Xc, over chunks of samples
        step = max(1, _CHUNK_ELEMENTS // u)
        for i in range(0, n, step):
            c = x[i:i + step].double() - mean
            gram += c.T @ c
    eig = torch.linalg.eigvalsh(gram).clamp_min(0)
    total = eig.sum()
    return float(total ** 2 / eig.square().sum()) if total > 0 else math.nan
