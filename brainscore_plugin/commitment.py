"""Brain-Score models of tdsnn networks.

``TDSNNCommitment`` wraps a built model with everything a commitment needs besides it
(``CommitmentSpec``: region -> layer map, preprocessing, ms per timestep), wherever that
comes from: ``brain_model(name)`` takes it from the registry, an exported plugin from its
own ``plugin.json`` (``exported.py``). The rate-coded model averages over the timesteps;
``temporal=True`` returns one time bin per group of timesteps. Both attach the cortical
sheet positions (``tissue_x``, ``tissue_y`` in mm) as neuroid coordinates where the model
has sheets, and their identifiers carry T and the weights' short sha256 so that
Brain-Score's activation cache never serves stale activations after retraining.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly, walk_coords
from brainscore_vision.model_helpers.activations.pytorch import load_preprocess_images
from brainscore_vision.model_helpers.brain_transformation import ModelCommitment
from brainscore_vision.model_helpers.brain_transformation.neural import LayerMappedModel
from brainscore_vision.model_helpers.brain_transformation.temporal import TemporalAligned

from tdsnn.data import Preprocessing
from tdsnn.registry import ModelEntry, load_variant

from .activations import TIME_SEPARATOR, SpikingActivationsModel

VISUAL_DEGREES = 8
BEHAVIORAL_READOUT_LAYER = "avgpool"
TEMPORAL_SUFFIX = "-temporal"


@dataclass(frozen=True)
class CommitmentSpec:
    """What a commitment needs besides the model.

    region_layer_map: Brain-Score region -> block name; preprocessing: image size (px) and
    normalisation; temporal: ``t0_ms`` and ``step_ms``, timestep t spans
    ``[t0 + t step, t0 + (t + 1) step)`` ms.
    """
    region_layer_map: dict[str, str]
    preprocessing: Preprocessing
    temporal: dict[str, float]

    @classmethod
    def of(cls, entry: ModelEntry) -> "CommitmentSpec":
        """The spec of a registry entry."""
        return cls(dict(entry.region_layer_map), entry.preprocessing, dict(entry.temporal))


def model_identifier(name: str, model: torch.nn.Module, sha256: str) -> str:
    """``<name>-T<T>-<sha8>`` for spiking models, ``<name>-<sha8>`` for ANNs."""
    timesteps = f"-T{model.config.timesteps}" if model.is_spiking else ""
    return f"{name}{timesteps}-{sha256[:8]}"


def wrap(model: torch.nn.Module, identifier: str, preprocessing: Preprocessing, steps_per_bin: int = 1,
         batch_size: int = 64) -> SpikingActivationsModel:
    """The rate-coded activations model of ``model`` (images resized and normalised as ``preprocessing``)."""
    load = functools.partial(load_preprocess_images, image_size=preprocessing.size,
                             normalize_mean=preprocessing.mean, normalize_std=preprocessing.std)
    return SpikingActivationsModel(model, identifier, load, steps_per_bin=steps_per_bin, batch_size=batch_size)


def activations_model(name: str, weights: Optional[str] = None, steps_per_bin: int = 1,
                      batch_size: int = 64) -> tuple[ModelEntry, SpikingActivationsModel]:
    """The rate-coded activations model of a registered variant (or of the checkpoint
    ``weights`` of its architecture): the entry's normalisation at the network's own input size."""
    entry, model, sha = load_variant(name, weights)
    return entry, wrap(model, model_identifier(entry.name, model, sha), entry.preprocessing.at(model.config.input_size),
                       steps_per_bin, batch_size)


class SheetLayerMappedModel(LayerMappedModel):
    """``LayerMappedModel`` that adds cortical positions and, when ``time_bins`` is set,
    returns ``presentation x neuroid x time_bin``.

    time_bins: ``[(start_ms, end_ms), ...]``, one per group of ``steps_per_bin`` timesteps.
    """

    def __init__(self, identifier, activations_model: SpikingActivationsModel, region_layer_map,
                 visual_degrees, time_bins: Optional[list[tuple[float, float]]] = None):
        super().__init__(identifier=identifier, activations_model=activations_model,
                         region_layer_map=region_layer_map, visual_degrees=visual_degrees)
        self.time_bins = time_bins

    def run_activations(self, stimuli, layers, number_of_trials=1, require_variance=None):
        if self.time_bins is None:
            return self._with_tissue(super().run_activations(stimuli, layers, number_of_trials, require_variance))
        binned = [f"{layer}{TIME_SEPARATOR}{k}" for layer in layers for k in range(len(self.time_bins))]
        flat = super().run_activations(stimuli, binned, number_of_trials, require_variance)
        return self._with_tissue(self._stack_time_bins(flat, layers))

    def _stack_time_bins(self, flat: NeuroidAssembly, layers: list[str]) -> NeuroidAssembly:
        """Neuroids of ``layer@t<k>`` -> one neuroid per unit of ``layer`` with a time_bin axis."""
        names = flat["layer"].values
        stacks, neuroid_coords = [], {}
        for layer in layers:
            per_bin = [flat.values[:, names == f"{layer}{TIME_SEPARATOR}{k}"] for k in range(len(self.time_bins))]
            stacks.append(np.stack(per_bin, axis=-1))
            first = flat.isel(neuroid=np.flatnonzero(names == f"{layer}{TIME_SEPARATOR}0"))
            for coord, dims, values in walk_coords(first):
                if dims == ("neuroid",):
                    neuroid_coords.setdefault(coord, []).append(values)
        neuroid = {coord: ("neuroid", np.concatenate(values)) for coord, values in neuroid_coords.items()}
        neuroid["layer"] = ("neuroid", np.concatenate([[layer] * s.shape[1] for layer, s in zip(layers, stacks)]))
        neuroid["neuroid_id"] = ("neuroid", np.array([f"{m}.{layer}.{n}" for m, layer, n in zip(
            neuroid["model"][1], neuroid["layer"][1], neuroid["neuroid_num"][1])]))
        presentation = {coord: (dims, values) for coord, dims, values in walk_coords(flat)
                        if dims == ("presentation",)}
        time = {"time_bin_start": ("time_bin", [start for start, _ in self.time_bins]),
                "time_bin_end": ("time_bin", [end for _, end in self.time_bins])}
        return NeuroidAssembly(np.concatenate(stacks, axis=1), coords={**presentation, **neuroid, **time},
                               dims=["presentation", "neuroid", "time_bin"])

    def _with_tissue(self, assembly: NeuroidAssembly) -> NeuroidAssembly:
        """Add ``tissue_x``/``tissue_y`` (mm) for neuroids of layers with a cortical sheet (NaN elsewhere)."""
        model = self.activations_model.model
        if not hasattr(model, "sheets"):
            return assembly
        layers, nums = assembly["layer"].values, assembly["neuroid_num"].values
        xy = np.full((len(layers), 2), np.nan)
        for layer in np.unique(layers):
            if layer in model.sheets_by_block():
                mask = layers == layer
                xy[mask] = model.sheet(layer).positions.cpu().numpy()[nums[mask].astype(int)]
        return assembly.assign_coords(tissue_x=("neuroid", xy[:, 0]), tissue_y=("neuroid", xy[:, 1]))


def time_bins_ms(temporal: dict[str, float], timesteps: int, steps_per_bin: int) -> list[tuple[float, float]]:
    """Bins ``[(start, end)]`` in ms: timestep t spans ``[t0 + t step, t0 + (t + 1) step)``."""
    if timesteps % steps_per_bin:
        raise ValueError(f"T = {timesteps} is not a multiple of steps_per_bin = {steps_per_bin}")
    t0, step = temporal["t0_ms"], temporal["step_ms"]
    width = step * steps_per_bin
    return [(t0 + k * width, t0 + (k + 1) * width) for k in range(timesteps // steps_per_bin)]


class TDSNNCommitment(ModelCommitment):
    """``ModelCommitment`` of a tdsnn network.

    Args:
        activations: the network's activations model (``wrap``); its identifier is the base id.
        spec: region -> layer map (V1 = layer2.0, V2 = layer3.0, V4 = layer3.1, IT = layer4.1
            by default), preprocessing and ms per timestep.
        temporal: one time bin per ``steps_per_bin`` timesteps (mapped to ms by
            ``spec.temporal``), and the identifier gains ``-temporal``.

    ``visual_degrees`` = 8, behavioural readout ``avgpool``.
    """

    def __init__(self, activations: SpikingActivationsModel, spec: CommitmentSpec, temporal: bool = False):
        region_map = dict(spec.region_layer_map)
        layers = list(dict.fromkeys([*region_map.values(), BEHAVIORAL_READOUT_LAYER]))
        identifier = activations.identifier + (TEMPORAL_SUFFIX if temporal else "")
        activations.identifier = identifier
        super().__init__(identifier=identifier, activations_model=activations, layers=layers,
                         behavioral_readout_layer=BEHAVIORAL_READOUT_LAYER, region_layer_map=region_map,
                         visual_degrees=VISUAL_DEGREES)
        model = activations.model
        bins = time_bins_ms(spec.temporal, model.timesteps, activations.steps_per_bin) if temporal else None
        self.layer_model = TemporalAligned(SheetLayerMappedModel(identifier, activations, region_map,
                                                                 VISUAL_DEGREES, time_bins=bins))
        self.spec = spec


def brain_model(name: str, weights: Optional[str] = None, temporal: bool = False, steps_per_bin: int = 1,
                batch_size: int = 64) -> TDSNNCommitment:
    """The Brain-Score model of registered variant ``name`` (see ``TDSNNCommitment``)."""
    entry, activations = activations_model(name, weights, steps_per_bin, batch_size)
    return TDSNNCommitment(activations, CommitmentSpec.of(entry), temporal=temporal)
