"""Fisher information over time per inter-area connection (docs/method.md §5).

A spiking model's prediction after its first t timesteps is
p_θ(y | x, steps ≤ t) = softmax of the classifier's logits averaged over steps 1..t. The
Fisher information that the weights θ of one connection carry at step t is the trace of
the empirical Fisher matrix at the true labels,

    I_t = (1/N) Σ_n ||∇_θ log p_θ(y_n | x_n, steps ≤ t)||²,

over N labelled images, for t = 1..T (the model's own T).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from spikingjelly.activation_based import functional
from torch import Tensor, nn
from tqdm import tqdm


def connection_weights(model: nn.Module, region_layer_map: Mapping[str, str]) -> dict[str, list[nn.Parameter]]:
    """The weights feeding each region: ``{region: [weight tensors]}``, the conv and linear
    weights (parameters of 2 or more dimensions; norms and biases left out) of the block
    that ``region_layer_map`` maps the region to (a module name of ``model``: a ResNet-18
    block such as ``layer2.0``, a CORnet area's input and recurrent convs, a Spikformer
    block's self-attention ``blocks.<i>.attn``)."""
    weights = {}
    for region, block in region_layer_map.items():
        try:
            module = model.get_submodule(block)
        except AttributeError as err:
            raise ValueError(f"region {region}: {block!r} is not a module of {type(model).__name__}") from err
        weights[region] = [p for p in module.parameters() if p.ndim >= 2]
        if not weights[region]:
            raise ValueError(f"region {region}: block {block!r} holds no conv or linear weights")
    return weights


def step_logits(model: nn.Module, x: Tensor) -> Tensor:
    """Per-timestep logits ``[T, B, classes]`` of ``model`` on ``x`` ``[B, C, H, W]``: the
    output of its classifier ``model.fc`` (which every backbone applies to all T steps at
    once) during one forward."""
    seen = []
    handle = model.fc.register_forward_hook(lambda _module, _inputs, output: seen.append(output))
    try:
        model(x)
    finally:
        handle.remove()
    if len(seen) != 1 or seen[0].ndim != 3:
        raise ValueError(f"{type(model).__name__}.fc ran {len(seen)} times; expected once on [T, B, features]")
    return seen[0]


def fisher_over_time(model: nn.Module, images: Tensor, labels: Tensor,
                     weights: Mapping[str, Sequence[Tensor]], progress: bool = False) -> Tensor:
    """I_t for t = 1..T and each entry of ``weights``: ``[T, len(weights)]`` float64, columns
    in the order of ``weights`` (e.g. ``connection_weights``; a tensor may belong to several).

    images: ``[N, C, H, W]`` (N >= 1), normalised as the model expects, on any device (moved to the
    model's); labels: ``[N]`` class indices. Runs in eval mode, one image at a time (the
    gradient is per image); the model's parameters, ``.grad`` fields, neuron state and
    training flag are left as they were.
    """
    if images.ndim != 4 or not len(images) or labels.shape != images.shape[:1]:
        raise ValueError(f"expected images [N, C, H, W] and labels [N], got {tuple(images.shape)} and "
                         f"{tuple(labels.shape)}")
    unique = list({id(p): p for group in weights.values() for p in group}.values())
    if not unique or not all(p.requires_grad for p in unique):
        raise ValueError("weights must be a non-empty mapping of tensors that require grad")
    index = {id(p): i for i, p in enumerate(unique)}
    columns = [[index[id(p)] for p in group] for group in weights.values()]
    device = unique[0].device
    was_training = model.training
    model.eval()
    total = None
    try:
        for x, y in tqdm(zip(images, labels), total=len(images), desc="fisher", leave=False, disable=not progress):
            logits = step_logits(model, x.unsqueeze(0).to(device=device, dtype=unique[0].dtype))[:, 0]  # [T, classes]
            steps = torch.arange(1, len(logits) + 1, device=device, dtype=logits.dtype)
            log_p = torch.log_softmax(logits.cumsum(0) / steps[:, None], dim=1)[:, int(y)]  # [T]
            if total is None:
                total = torch.zeros(len(log_p), len(columns), dtype=torch.float64)
            for t, value in enumerate(log_p):
                grads = torch.autograd.grad(value, unique, retain_graph=t < len(log_p) - 1, allow_unused=True)
                squared = torch.stack([torch.zeros((), dtype=torch.float64, device=device) if g is None
                                       else g.double().pow(2).sum() for g in grads]).cpu()
                total[t] += torch.stack([squared[column].sum() for column in columns])
    finally:
        functional.reset_net(model)
        model.train(was_training)
    return total / len(images)
