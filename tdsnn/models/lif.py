"""Multi-step LIF neuron with a fused CPU path.

``lif_sequence`` is a pure function with a hand-written backward: the forward loop
over T needs 2 elementwise passes per step and the backward recurrence 1, while
everything that does not depend on the recurrence (surrogate derivative, reset
gradient, input scaling) runs once over the whole ``[T, ...]`` tensor. spikingjelly
2.0.0's CPU path runs several autograd ops per step instead, which kept a spiking
training step well above T times an ANN step (BENCHMARKS.md, conv floor); that is why
this exists. ``LIFNode`` subclasses spikingjelly's ``LIFNode`` so state handling,
``reset_net`` and monitors are spikingjelly's; on CUDA it defers to spikingjelly's
Triton kernels.

Dynamics (METHOD.md §1), hard reset:
    H[t] = V[t-1] + (X[t] - (V[t-1] - V_reset)) / tau      (decay_input)
    H[t] = V[t-1] - (V[t-1] - V_reset) / tau + X[t]        (otherwise)
    S[t] = H[t] >= V_th;   V[t] = V_reset if S[t] else H[t]
Surrogate: ATan, dS/dH = (alpha / 2) / (1 + (pi / 2 * alpha * (H - V_th))^2).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from spikingjelly.activation_based import neuron, surrogate

from ..config import NeuronConfig


class _LIFSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, v0: torch.Tensor, tau: float, decay_input: bool, v_threshold: float,
                v_reset: float, detach_reset: bool, alpha: float):
        keep = 1.0 - 1.0 / tau
        drive = x * (1.0 / tau) if decay_input else x.clone()
        if v_reset != 0.0:
            drive.add_(v_reset / tau)
        h = drive  # overwritten in place: H[t] = keep * V[t-1] + drive[t]
        v = v0
        for t in range(x.shape[0]):
            h[t].add_(v, alpha=keep)
            v = torch.where(h[t] >= v_threshold, v_reset, h[t])
        spikes = (h >= v_threshold).to(x.dtype)
        ctx.save_for_backward(h)
        ctx.params = (tau, decay_input, v_threshold, v_reset, detach_reset, alpha)
        return spikes, v

    @staticmethod
    def backward(ctx, grad_spikes: Optional[torch.Tensor], grad_v: Optional[torch.Tensor]):
        (h,) = ctx.saved_tensors
        tau, decay_input, v_threshold, v_reset, detach_reset, alpha = ctx.params
        keep = 1.0 - 1.0 / tau
        z = (h - v_threshold).mul_(math.pi / 2 * alpha)
        sg = z.mul_(z).add_(1.0).reciprocal_().mul_(alpha / 2)  # surrogate dS/dH
        not_spiked = (h < v_threshold).to(h.dtype)
        # dV[t]/dH[t] = 1 - S[t] (+ (V_reset - H[t]) * dS/dH when the reset is not detached)
        reset_grad = not_spiked if detach_reset else torch.addcmul(not_spiked, v_reset - h, sg)
        gh = sg.mul_(grad_spikes) if grad_spikes is not None else torch.zeros_like(h)
        if grad_v is not None:
            gh[-1].addcmul_(grad_v, reset_grad[-1])
        # gradient reaching V[t] from H[t+1] is keep * gh[t+1], passed through V[t] = f(H[t])
        reset_grad.mul_(keep)
        for t in range(h.shape[0] - 1, 0, -1):
            gh[t - 1].addcmul_(gh[t], reset_grad[t - 1])
        grad_v0 = gh[0] * keep
        grad_x = gh.mul_(1.0 / tau) if decay_input else gh
        return grad_x, grad_v0, None, None, None, None, None, None


def lif_sequence(x: torch.Tensor, v0: torch.Tensor, config: NeuronConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Run LIF over ``x [T, ...]`` from membrane ``v0 [...]``; returns spikes ``[T, ...]`` and final V ``[...]``."""
    return _LIFSequence.apply(x, v0, float(config.tau), config.decay_input, float(config.v_threshold),
                              float(config.v_reset), config.detach_reset, float(config.surrogate_alpha))


class LIFNode(neuron.LIFNode):
    """spikingjelly ``LIFNode`` (multi-step, ATan surrogate) with the fused CPU path above."""

    def __init__(self, config: NeuronConfig):
        super().__init__(tau=float(config.tau), decay_input=config.decay_input, v_threshold=config.v_threshold,
                         v_reset=config.v_reset, surrogate_function=surrogate.ATan(alpha=config.surrogate_alpha),
                         detach_reset=config.detach_reset, step_mode="m")
        self.neuron_config = config

    def multi_step_functional_forward(self, inputs, states, **kwargs):
        x = inputs[0]
        if x.is_cuda:
            return super().multi_step_functional_forward(inputs, states, **kwargs)
        spikes, v = lif_sequence(x, states[0], self.neuron_config)
        return (spikes,), (v, *states[1:])
