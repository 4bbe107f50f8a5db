"""Demo neural-data packs with a planted signal, for tests and demonstrations."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import brainscore_plugin  # noqa: F401  (configures Brain-Score before it is imported)
import numpy as np
import pandas as pd
import torch
from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet
from brainscore_vision.model_helpers.activations.pytorch import disable_activation_caching

from brainscore_plugin.commitment import activations_model
from tdsnn.data import synthetic_images

from .format import DEFAULT_TIME_BIN, DEFAULT_VISUAL_DEGREES, PackError
from .read import stimulus_set
from .write import assembly, finish_pack, pack_meta, stimulus_table, write_stimuli


def make_demo_pack(folder, model: Union[str, Callable[[torch.Tensor], np.ndarray]], *, shuffled: bool = False,
                   seed: int = 0, region: str = "IT", name: Optional[str] = None, weights: Optional[str] = None,
                   n_images: int = 48, classes: int = 4, image_size: int = 32, n_neuroids: int = 20,
                   repetitions: int = 4, noise: float = 0.5, subjects: int = 2, components: int = 10,
                   metrics: Sequence[str] = ("pls", "rdm")) -> Path:
    """A pack with a planted signal: ``n_images`` noisy gratings (``tdsnn.data.synthetic_images``;
    ``object_name`` = orientation class), ``n_neuroids`` neuroids = standardised random
    linear readouts of the model's responses + Gaussian noise (``noise`` per repetition,
    in units of the signal's standard deviation). The readouts mix the responses' leading
    ``components`` principal components (each scaled to unit variance), as neurons that a
    few stimuli suffice to predict; a readout of all units of a sparse spiking layer
    would spread the signal over more dimensions than there are stimuli.

    model: a registered model name (responses = its Brain-Score rates of the layer mapped to
    ``region``, exactly as the benchmarks will see them), or a callable ``images [N, 3, S, S]
    in [0, 1] -> features [N, F]``. shuffled: the control: each stimulus gets another
    stimulus's responses (stimulus ids permuted), so no model should predict them.
    """
    folder = Path(folder)
    meta = pack_meta(folder, name or folder.name, region,
                     metrics if subjects >= 2 else [m for m in metrics if m != "rdm"], "object_name",
                     DEFAULT_VISUAL_DEGREES, DEFAULT_TIME_BIN)
    rng = np.random.default_rng(seed)
    images, labels = synthetic_images(n_images, image_size, classes=classes, seed=seed)
    table = write_stimuli(folder, *stimulus_table(images, pd.DataFrame({
        "stimulus_id": [f"s{i:04d}" for i in range(n_images)], "object_name": [f"class{int(c)}" for c in labels]})))
    if isinstance(model, str):
        features = _model_features(model, weights, region, stimulus_set(folder, table, f"demo-{uuid.uuid4().hex}"))
    else:
        features = np.asarray(model(images), dtype=np.float64).reshape(n_images, -1)
    centred = features - features.mean(0)
    _, singular, components_ = np.linalg.svd(centred, full_matrices=False)
    k = int(min(components, np.sum(singular > singular[0] * 1e-6)))
    if k == 0:
        raise PackError("the model's responses do not vary over the demo images (silent layer?)")
    scores = centred @ components_[:k].T / singular[:k]  # leading principal components, unit variance
    signal = scores @ rng.standard_normal((k, n_neuroids))
    spread = signal.std(0)
    if not np.all(spread > 0):
        raise PackError("the model's responses do not vary over the demo images (silent layer?)")
    signal = (signal - signal.mean(0)) / spread
    if shuffled:
        signal = signal[rng.permutation(n_images)]
    responses = signal[None] + noise * rng.standard_normal((repetitions, *signal.shape))
    labels_ = [f"subject{j}" for j in range(subjects)]
    per_neuroid = [labels_[j * subjects // n_neuroids] for j in range(n_neuroids)] if subjects else None
    finish_pack(folder, assembly(table, responses, region, "object_name", per_neuroid, None), meta)
    return folder


def _model_features(name: str, weights: Optional[str], region: str, stimuli: StimulusSet) -> np.ndarray:
    """Rates ``[N, F]`` of registered model ``name``'s ``region`` layer, as Brain-Score extracts them."""
    entry, wrapper = activations_model(name, weights, batch_size=min(64, len(stimuli)))  # no padded batch
    layer = entry.region_layer_map[region]
    return np.asarray(disable_activation_caching(wrapper)(stimuli, layers=[layer]).values, dtype=np.float64)
