"""Rate-coded activations model for tdsnn networks (Brain-Score's PytorchWrapper contract).

Brain-Score's default PytorchWrapper hook keeps one call of a module per forward and
expects ``[B, ...]`` outputs. tdsnn modules map ``[T, B, ...] -> [T, B, ...]`` and, for
extraction, the network runs one timestep per call (``forward_stepwise``), so here each
hook *accumulates* its module's output over the calls of one forward and reports the
mean: the firing rate of a spiking layer, the activation of an ANN layer (T = 1).
Memory therefore does not grow with T. Neuron state is reset before every batch.

A layer name may carry a time bin: ``"layer4.1@t2"`` is the mean of ``layer4.1`` over
timesteps ``[2 s, 3 s)`` for ``steps_per_bin = s`` (see ``temporal.py``).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Optional

import numpy as np
import torch
from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper

TIME_SEPARATOR = "@t"


def split_time_bin(layer_name: str) -> tuple[str, Optional[int]]:
    """``"layer4.1@t2"`` -> ``("layer4.1", 2)``; ``"layer4.1"`` -> ``("layer4.1", None)``."""
    layer, sep, index = layer_name.partition(TIME_SEPARATOR)
    return layer, (int(index) if sep else None)


class SpikingActivationsModel(PytorchWrapper):
    """Activations model for a tdsnn network (any architecture of ``tdsnn.models``).

    Args:
        model: a tdsnn model (spiking or ANN).
        identifier: activation-cache key; should encode weights and T.
        preprocessing: ``paths -> np.ndarray [N, 3, S, S]``.
        steps_per_bin: timesteps averaged into one ``@t`` time bin.
        batch_size: images per forward.
    """

    def __init__(self, model: torch.nn.Module, identifier: str, preprocessing: Callable,
                 steps_per_bin: int = 1, batch_size: int = 64):
        super().__init__(model=model, preprocessing=preprocessing, identifier=identifier, batch_size=batch_size)
        if steps_per_bin < 1:
            raise ValueError(f"steps_per_bin must be >= 1, got {steps_per_bin}")
        self.steps_per_bin = steps_per_bin

    @property
    def model(self) -> torch.nn.Module:
        return self._model

    def get_layer(self, layer_name: str) -> torch.nn.Module:
        if layer_name == "logits":  # the classifier, whatever modules are registered after it
            return self._model.fc
        return super().get_layer(layer_name)

    def get_activations(self, images, layer_names) -> "OrderedDict[str, np.ndarray]":
        """Mean output of each requested layer (or time bin) over the timesteps: ``{name: [B, ...]}``."""
        images = torch.as_tensor(np.stack(images)).to(self._device, next(self._model.parameters()).dtype)
        requests: dict[str, list[tuple[str, Optional[int]]]] = {}
        for name in layer_names:
            layer, time_bin = split_time_bin(name)
            requests.setdefault(layer, []).append((name, time_bin))
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {name: 0 for name in layer_names}
        calls: dict[str, int] = {layer: 0 for layer in requests}

        def accumulate(layer: str):
            def hook(_module, _inputs, output):
                step = calls[layer]
                calls[layer] += 1
                frame = output.detach().float().sum(0)  # [1, B, ...] per step, or [T', B, ...]
                for name, time_bin in requests[layer]:
                    if time_bin is None or step // self.steps_per_bin == time_bin:
                        sums[name] = sums[name] + frame if name in sums else frame
                        counts[name] += output.shape[0]
            return hook

        handles = [self.get_layer(layer).register_forward_hook(accumulate(layer)) for layer in requests]
        self._model.eval()
        try:
            with torch.no_grad():
                self._model.forward_stepwise(images)
        finally:
            for handle in handles:
                handle.remove()
        result = OrderedDict()
        for name in layer_names:
            if counts[name] == 0:
                raise ValueError(f"{name}: that module produced no output in that time bin "
                                 f"(it runs {calls[split_time_bin(name)[0]]} time(s) per image)")
            result[name] = (sums[name] / counts[name]).cpu().numpy()
        return result
