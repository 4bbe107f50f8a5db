"""Accuracy under perturbation (METHOD.md §5): Gaussian noise, FGSM, PGD and random
pixel masking drawn anew at every timestep.

Images are in pixel space, ``[B, 3, S, S]`` in [0, 1]; perturbed images are clamped to
[0, 1]. Attacks differentiate the cross-entropy with respect to the input only, through
the whole forward over T (spiking models: through the surrogate gradient), so model
parameters collect no gradients. Run them in eval mode (``robust_accuracy`` does).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm


@dataclass(frozen=True)
class RobustnessConfig:
    """Perturbation strengths, in [0, 1] pixel units (the paper does not state its own).

    noise_std: std of additive Gaussian noise; fgsm_eps: L-inf FGSM step; pgd_eps,
    pgd_step, pgd_steps: L-inf PGD radius, step size and steps (random start);
    mask_fraction: fraction of pixels set to 0 (all channels) in each timestep's frame;
    seed: of the noise, PGD start and masks.
    """
    noise_std: float = 0.1
    fgsm_eps: float = 4 / 255
    pgd_eps: float = 4 / 255
    pgd_step: float = 1 / 255
    pgd_steps: int = 10
    mask_fraction: float = 0.3
    seed: int = 0


class Normalized(nn.Module):
    """``model`` behind per-channel normalisation: takes pixel-space images ``[B, 3, S, S]``
    or per-timestep frames ``[T, B, 3, S, S]`` in [0, 1]."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(3, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(3, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        return self.model((images - self.mean) / self.std)


def gaussian_noise(images: Tensor, std: float, generator: torch.Generator) -> Tensor:
    """``images + N(0, std²)`` per pixel and channel, clamped to [0, 1]."""
    noise = torch.randn(images.shape, generator=generator).to(images)
    return (images + std * noise).clamp(0, 1)


def input_gradient(model: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
    """d cross-entropy / d images, ``[B, 3, S, S]``, of the model in its current mode (the
    attacks expect eval mode); parameters collect no gradients."""
    x = images.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x), labels), x)
    return grad


def fgsm(model: nn.Module, images: Tensor, labels: Tensor, eps: float) -> Tensor:
    """Fast gradient sign attack: ``images + eps sign(grad)``, clamped to [0, 1]."""
    return (images + eps * input_gradient(model, images, labels).sign()).clamp(0, 1).detach()


def pgd(model: nn.Module, images: Tensor, labels: Tensor, eps: float, step: float, steps: int,
        generator: torch.Generator) -> Tensor:
    """L-inf projected gradient ascent of the cross-entropy from a uniform random start in
    the eps-ball: ``steps`` signed steps of size ``step``, each projected onto the ball and [0, 1]."""
    start = (torch.rand(images.shape, generator=generator).to(images) * 2 - 1) * eps
    x = (images + start).clamp(0, 1)
    for _ in range(steps):
        x = x + step * input_gradient(model, x, labels).sign()
        x = torch.min(torch.max(x, images - eps), images + eps).clamp(0, 1).detach()
    return x


def timestep_mask(images: Tensor, fraction: float, timesteps: int, generator: torch.Generator) -> Tensor:
    """``[T, B, 3, S, S]`` frames: in each, an independent random ``fraction`` of the pixels
    (all channels together) is set to 0."""
    t, (b, _, h, w) = timesteps, images.shape
    keep = (torch.rand((t, b, 1, h, w), generator=generator) >= fraction).to(images)
    return images.unsqueeze(0) * keep


PERTURBATIONS = ("clean", "noise", "fgsm", "pgd", "mask")


def robust_accuracy(model: nn.Module, images: Tensor, labels: Tensor, mean: Sequence[float], std: Sequence[float],
                    config: RobustnessConfig = RobustnessConfig(), batch_size: int = 64,
                    device: Union[str, torch.device] = "cpu", progress: bool = True) -> dict:
    """Top-1 (%) of ``model`` on ``images [N, 3, S, S]`` in [0, 1] with ``labels [N]``,
    clean and under each perturbation (``PERTURBATIONS``); ``mean``/``std``: the model's
    input normalisation. Returns ``{name: accuracy}`` plus ``"config"``: the strengths
    used. Deterministic for a given ``config.seed``; the training flag is restored."""
    was_training = model.training
    net = Normalized(model, mean, std).to(device).eval()
    timesteps = getattr(model, "timesteps", 1)
    generator = torch.Generator().manual_seed(config.seed)
    correct = dict.fromkeys(PERTURBATIONS, 0)
    try:
        for start in tqdm(range(0, len(images), batch_size), desc="robustness", leave=False, disable=not progress):
            x = images[start:start + batch_size].to(device)
            y = labels[start:start + batch_size].to(device)
            perturbed = {
                "clean": x,
                "noise": gaussian_noise(x, config.noise_std, generator),
                "fgsm": fgsm(net, x, y, config.fgsm_eps),
                "pgd": pgd(net, x, y, config.pgd_eps, config.pgd_step, config.pgd_steps, generator),
                "mask": timestep_mask(x, config.mask_fraction, timesteps, generator),
            }
            with torch.no_grad():
                for name, inputs in perturbed.items():
                    correct[name] += int((net(inputs).argmax(1) == y).sum())
    finally:
        model.train(was_training)
    n = max(1, len(images))
    return {**{name: 100.0 * c / n for name, c in correct.items()}, "config": dataclasses.asdict(config)}
