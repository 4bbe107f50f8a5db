"""Accuracy under perturbation (docs/method.md §5): Gaussian noise, FGSM, PGD and random
pixel masking drawn anew at every timestep.

Conventions: images are in pixel space, ``[B, 3, S, S]`` with values in [0, 1], and every
perturbed image is clamped to [0, 1]; strengths (noise std, eps, step sizes) are in the
same pixel units. Models take normalised input, so attacks run on ``Normalized(model,
mean, std)``. Attacks differentiate the cross-entropy with respect to the input only
(``torch.autograd.grad``), through the whole forward over all T timesteps (for spiking
models: through spikingjelly's surrogate gradient), with the model in eval mode (BN uses
its running statistics); each module's training flag is restored afterwards and model
parameters collect no ``.grad``.
"""
from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional
from torch import Tensor, nn
from tqdm import tqdm

#: Keys of ``robust_accuracy``'s accuracies, in order -> their names in tables and figures.
PERTURBATION_LABELS = {"clean": "clean", "noise": "noise", "fgsm": "FGSM", "pgd": "PGD", "mask": "masking"}
#: Keys of ``robust_accuracy``'s accuracies, in order.
PERTURBATIONS = tuple(PERTURBATION_LABELS)


@dataclass(frozen=True)
class RobustnessConfig:
    """Perturbation strengths, in [0, 1] pixel units (the paper does not state its own).

    - ``noise_std``: std of additive Gaussian noise, per pixel and channel (10 % of the range).
    - ``fgsm_eps``: L-inf FGSM radius. 4/255 is the usual ImageNet radius (RobustBench) and
      half the usual CIFAR one; on 32-px Fashion-MNIST it is a mild, visually invisible attack.
    - ``pgd_eps``, ``pgd_step``, ``pgd_steps``: L-inf PGD radius (as FGSM), step size
      (eps / 4) and number of steps (10: 2.5 eps of travel, enough to reach the ball's
      boundary from any random start).
    - ``mask_fraction``: fraction of the pixels (all channels together) set to 0 in each
      timestep's frame, a new mask per timestep.
    - ``seed``: of the noise, the PGD random starts and the masks.

    Field names are the harness's command-line flags (``--pgd-steps`` ...).
    """
    noise_std: float = 0.1
    fgsm_eps: float = 4 / 255
    pgd_eps: float = 4 / 255
    pgd_step: float = 1 / 255
    pgd_steps: int = 10
    mask_fraction: float = 0.3
    seed: int = 0

    def __post_init__(self):
        for name in ("noise_std", "fgsm_eps", "pgd_eps", "pgd_step", "pgd_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"RobustnessConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.mask_fraction <= 1:
            raise ValueError(f"RobustnessConfig.mask_fraction must be in [0, 1], got {self.mask_fraction}")


class Normalized(nn.Module):
    """``model`` behind per-channel normalisation ``(x - mean) / std``.

    Takes pixel-space images ``[B, 3, S, S]`` or per-timestep frames ``[T, B, 3, S, S]`` in
    [0, 1] and returns ``model``'s output (logits ``[B, classes]``). ``mean``/``std``: 3 floats.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1))

    @property
    def timesteps(self) -> int:
        """The wrapped model's T (1 for ANNs and models without ``timesteps``)."""
        return getattr(self.model, "timesteps", 1)

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim not in (4, 5):
            raise ValueError(f"expected images [B, C, H, W] or [T, B, C, H, W], got shape {tuple(images.shape)}")
        return self.model((images - self.mean) / self.std)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode; restore every submodule's training flag (and reset
    spiking state, which may hold an attack's graph) on exit."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag
        functional.reset_net(model)


def _rand(kind: str, shape: Sequence[int], like: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    """``torch.rand``/``randn`` drawn on the generator's device (so results do not depend on
    where ``like`` lives), then moved to ``like``'s device and dtype."""
    device = generator.device if generator is not None else like.device
    draw = torch.randn if kind == "normal" else torch.rand
    return draw(tuple(shape), generator=generator, device=device).to(like)


def _check_images(images: Tensor, ndim: int = 4) -> None:
    if images.ndim != ndim:
        raise ValueError(f"expected images with {ndim} dims ([B, C, H, W]), got shape {tuple(images.shape)}")


def gaussian_noise(images: Tensor, std: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """``images + N(0, std²)``, independent per pixel and channel, clamped to [0, 1].

    ``images`` ``[B, 3, S, S]`` (any shape works) in [0, 1]; ``std`` in pixel units.
    """
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std}")
    return (images + std * _rand("normal", images.shape, images, generator)).clamp(0, 1)


def input_gradient(model: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
    """d cross-entropy(model(images), labels) / d images, same shape as ``images``
    (``[B, 3, S, S]`` or ``[T, B, 3, S, S]``), computed in eval mode through all T.

    ``model`` maps pixel-space images to logits ``[B, classes]`` (e.g. ``Normalized``);
    ``labels`` ``[B]`` int. Only the input is differentiated: parameters get no ``.grad``.
    """
    with eval_mode(model):
        return _input_gradient(model, images, labels)


def _input_gradient(model: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
    x = images.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x), labels), x)
    return grad


def fgsm(model: nn.Module, images: Tensor, labels: Tensor, eps: float) -> Tensor:
    """Fast gradient sign attack: ``clamp(images + eps * sign(grad), 0, 1)``, ``[B, 3, S, S]``.

    ``model``: pixel space -> logits (e.g. ``Normalized``), run in eval mode; ``eps``: L-inf
    radius in pixel units.
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    _check_images(images)
    with eval_mode(model):
        grad = _input_gradient(model, images, labels)
    return (images + eps * grad.sign()).clamp(0, 1).detach()


def pgd(model: nn.Module, images: Tensor, labels: Tensor, eps: float, step_size: float, steps: int,
        generator: Optional[torch.Generator] = None) -> Tensor:
    """L-inf projected gradient ascent of the cross-entropy, ``[B, 3, S, S]``.

    Starts from a uniform random point of the eps-ball around ``images`` (clamped to
    [0, 1]), then takes ``steps`` signed steps of ``step_size``, each projected back onto
    the eps-ball and [0, 1]. ``eps``/``step_size`` in pixel units; ``model`` as ``fgsm``.
    """
    if eps < 0 or step_size < 0 or steps < 0:
        raise ValueError(f"eps, step_size and steps must be >= 0, got {eps}, {step_size}, {steps}")
    _check_images(images)
    images = images.detach()
    lower, upper = (images - eps).clamp(0, 1), (images + eps).clamp(0, 1)
    x = (images + eps * (2 * _rand("uniform", images.shape, images, generator) - 1)).clamp(0, 1)
    with eval_mode(model):
        for _ in range(steps):
            x = x + step_size * _input_gradient(model, x, labels).sign()
            x = torch.min(torch.max(x, lower), upper).detach()
    return x


def timestep_mask(images: Tensor, p: float, timesteps: int, generator: Optional[torch.Generator] = None) -> Tensor:
    """Per-timestep frames ``[T, B, 3, S, S]`` of ``images`` ``[B, 3, S, S]``: in each frame an
    independent random fraction ``p`` of the pixels (each pixel with probability ``p``, all
    channels together) is set to 0, i.e. black in pixel space (a dropped pixel; on
    Fashion-MNIST, the background). ANNs (T = 1) see a single masked frame.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    _check_images(images)
    b, _, h, w = images.shape
    keep = _rand("uniform", (timesteps, b, 1, h, w), images, generator) >= p
    return images.unsqueeze(0) * keep.to(images)


def _batches(data: Union[Tensor, Iterable], labels: Optional[Tensor], batch_size: int) -> tuple[Iterable, Optional[int]]:
    """(iterable of ``(images, labels)`` batches, number of batches or None)."""
    if isinstance(data, Tensor):
        if labels is None or len(labels) != len(data):
            raise ValueError("images given as a tensor need labels of the same length")
        starts = range(0, len(data), batch_size)
        return ((data[i:i + batch_size], labels[i:i + batch_size]) for i in starts), len(starts)
    if labels is not None:
        raise ValueError("labels are given with a tensor of images only; a loader yields (images, labels)")
    try:
        total = len(data)
    except TypeError:
        total = None
    return ((batch[0], batch[1]) for batch in data), total


def robust_accuracy(model: nn.Module, data: Union[Tensor, Iterable], labels: Optional[Tensor] = None,
                    mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                    config: RobustnessConfig = RobustnessConfig(), batch_size: int = 64,
                    device: Union[str, torch.device] = "cpu", progress: bool = True) -> dict:
    """Top-1 accuracy (%) of ``model``, clean and under each perturbation.

    ``data``: images ``[N, 3, S, S]`` in [0, 1] with ``labels`` ``[N]`` (batched by
    ``batch_size``), or an iterable of ``(images [B, 3, S, S], labels [B])`` batches such as
    a ``DataLoader`` (then ``labels`` is None). ``mean``/``std``: the model's input
    normalisation (3 floats each). The model is moved to ``device`` and run in eval mode;
    its training flags are restored afterwards.

    Returns ``{<each of PERTURBATIONS>: accuracy in %, "images": N,
    "timesteps": T, "config": dataclasses.asdict(config)}`` (JSON-serialisable).
    Deterministic for a given ``config.seed`` and batching (one CPU generator draws the
    noise, PGD starts and masks, batch by batch).
    """
    if mean is None or std is None:
        raise ValueError("robust_accuracy needs the model's input normalisation mean and std")
    batches, total = _batches(data, labels, batch_size)
    net = Normalized(model, mean, std).to(device)
    timesteps = net.timesteps
    generator = torch.Generator().manual_seed(config.seed)
    correct = dict.fromkeys(PERTURBATIONS, 0)
    n = 0
    with eval_mode(net):
        for x, y in tqdm(batches, total=total, desc="robustness", leave=False, disable=not progress):
            x, y = x.to(device), torch.as_tensor(y).to(device)
            if not x.is_floating_point() or x.min() < 0 or x.max() > 1:
                raise ValueError("robust_accuracy expects pixel-space images in [0, 1] (not normalised)")
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
            n += len(y)
    if n == 0:
        raise ValueError("robust_accuracy got no images")
    return {**{name: 100.0 * c / n for name, c in correct.items()}, "images": n, "timesteps": int(timesteps),
            "config": dataclasses.asdict(config)}
