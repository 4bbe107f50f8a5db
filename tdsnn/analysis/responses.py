"""Block responses to a stimulus set: firing rates (spiking models) or activations (ANNs).

Units are flattened channel-major (``c*H*W + h*W + w``), the order of the cortical
sheets' positions.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from ..data import Preprocessing

Normalization = Union[Preprocessing, tuple[Sequence[float], Sequence[float]]]


def block_rates(model: torch.nn.Module, images: Tensor, preprocessing: Normalization, blocks: Sequence[str],
                batch_size: int = 64, device: Optional[Union[str, torch.device]] = None,
                progress: bool = True) -> dict[str, Tensor]:
    """Per-unit responses ``{block: [N, C*H*W] float32}`` (CPU, in ``blocks`` order) to
    images ``[N, 3, S, S]`` in [0, 1]: firing rates (spike count / T, in [0, 1]) for
    spiking models, activations for ANNs. blocks: names of ``model.block_names``.

    Images are resized (bilinear, antialiased) to ``model.config.input_size`` when S
    differs, then normalised. preprocessing: a ``Preprocessing`` (its size must equal the
    model's input size, which the sheet positions are tied to) or a ``(mean, std)`` pair.
    device: where to run, default the model's; the model is moved there. Runs in eval
    mode without gradients (the training flag is restored); each batch is reduced to
    the requested blocks before the next one runs.
    """
    return _responses(model, images, preprocessing, blocks, batch_size, device, progress, per_timestep=False)


def block_spikes(model: torch.nn.Module, images: Tensor, preprocessing: Normalization, blocks: Sequence[str],
                 batch_size: int = 64, device: Optional[Union[str, torch.device]] = None,
                 progress: bool = True) -> dict[str, Tensor]:
    """Per-timestep responses ``{block: [N, T, C*H*W]}``: uint8 spikes in {0, 1} for
    spiking models, float32 activations (T = 1) for ANNs; arguments as ``block_rates``."""
    return _responses(model, images, preprocessing, blocks, batch_size, device, progress, per_timestep=True)


def _responses(model: torch.nn.Module, images: Tensor, preprocessing: Normalization, blocks: Sequence[str],
               batch_size: int, device: Optional[Union[str, torch.device]], progress: bool,
               per_timestep: bool) -> dict[str, Tensor]:
    """``model.forward_blocks`` over images in batches; each requested block kept as
    ``[N, U]`` (mean over T) or, with ``per_timestep``, ``[N, T, U]``."""
    unknown = [b for b in blocks if b not in model.block_names]
    if unknown:
        raise ValueError(f"unknown blocks {unknown} of {model.config.arch}; valid: {', '.join(model.block_names)}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images [N, 3, S, S], got shape {tuple(images.shape)}")
    size = model.config.input_size
    if isinstance(preprocessing, Preprocessing):
        if preprocessing.size != size:
            raise ValueError(f"preprocessing size {preprocessing.size} != model input size {size}")
        mean, std = preprocessing.mean, preprocessing.std
    else:
        mean, std = preprocessing
    if device is None:
        device = next(model.parameters()).device
    model.to(device)
    mean = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    spike_dtype = torch.uint8 if per_timestep and model.is_spiking else torch.float32

    out: dict[str, Tensor] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in tqdm(range(0, len(images), batch_size), desc="responses", leave=False, disable=not progress):
                x = images[start:start + batch_size].to(device=device, dtype=torch.float32)
                if x.shape[-2:] != (size, size):
                    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
                _, outputs = model.forward_blocks((x - mean) / std)
                for block in blocks:
                    y = outputs[block].flatten(2)  # [T, B, U]
                    y = y.transpose(0, 1).to(spike_dtype) if per_timestep else y.mean(0)
                    if block not in out:
                        out[block] = torch.empty((len(images), *y.shape[1:]), dtype=y.dtype)
                    out[block][start:start + len(x)] = y.cpu()
    finally:
        model.train(was_training)
    return out
