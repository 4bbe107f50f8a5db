"""Model registry: ``model_registry.yaml`` variants -> configs -> models (timm-style).

Names are ``arch`` or ``arch.tag``. A bare ``arch`` resolves to the variant marked
``default: true`` when there is one, else to the architecture's own defaults.
"""
from __future__ import annotations

import fnmatch
import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml
from torch import nn

from .checkpoint import (CheckpointError, PathLike, load_state, read_checkpoint, read_state_dict, sha256_file,
                         state_sha256)
from .config import ModelConfig
from .data import DATASET_STATS, Preprocessing
from .hub import HubFile, hub_file, torchvision_file
from .models import ARCHITECTURES

REGISTRY_PATH = Path(os.environ.get("TDSNN_REGISTRY", Path(__file__).resolve().parent.parent / "model_registry.yaml"))


class UnknownModelError(KeyError):
    """A model name that is neither a registered architecture nor a variant."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Weights:
    """Where a variant's weights live, and their sha256 (``None``: not yet pinned).

    Exactly one source: ``path`` (a tdsnn safetensors checkpoint, relative to the registry
    file), ``hub`` (a ``torch.save``d state_dict on the Hugging Face hub) or
    ``torchvision`` (a torchvision weights enum such as ``ResNet18_Weights.IMAGENET1K_V1``).
    """
    path: Optional[str] = None
    hub: Optional[HubFile] = None
    torchvision: Optional[str] = None
    sha256: Optional[str] = None

    def __post_init__(self):
        given = [k for k in ("path", "hub", "torchvision") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"weights need exactly one of path, hub, torchvision; got {given or 'none'}")

    @property
    def source(self) -> str:
        return self.path or (str(self.hub) if self.hub else f"torchvision {self.torchvision}")


@dataclass(frozen=True)
class ModelEntry:
    """One resolved registry entry."""
    name: str
    arch: str
    config: ModelConfig
    region_layer_map: dict[str, str]
    preprocessing: Preprocessing
    temporal: dict[str, float]
    weights: Optional[Weights] = None
    data: Optional[str] = None


@functools.lru_cache(maxsize=4)
def _read_registry(path: Path) -> dict[str, Any]:
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    unknown = set(raw.get("architectures", {})) - set(ARCHITECTURES)
    if unknown:
        raise ValueError(f"{path}: architectures without an implementation: {sorted(unknown)}")
    return raw


def _registry() -> dict[str, Any]:
    return _read_registry(REGISTRY_PATH)


def list_models(pattern: str = "*") -> list[str]:
    """Architecture and ``arch.tag`` variant names matching a shell-style ``pattern``, sorted."""
    reg = _registry()
    names = set(reg.get("architectures", {})) | set(reg.get("variants") or {})
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def architecture_config(arch: str) -> ModelConfig:
    """The registered defaults of architecture ``arch``, before any variant's overrides."""
    archs = _registry().get("architectures", {})
    if arch not in archs:
        raise UnknownModelError(f"unknown architecture {arch!r}; registered: {', '.join(sorted(archs))}")
    return ModelConfig.from_dict({"arch": arch, **((archs[arch] or {}).get("config") or {})})


def resolve(name: str) -> ModelEntry:
    """The registry entry for ``arch`` or ``arch.tag``."""
    reg = _registry()
    archs = reg.get("architectures", {})
    variants = reg.get("variants") or {}
    if name in archs:
        defaults = [v for v, spec in variants.items() if v.split(".")[0] == name and spec.get("default")]
        if defaults:
            name = defaults[0]
    arch = name.split(".")[0]
    if arch not in archs or (name != arch and name not in variants):
        raise UnknownModelError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    arch_spec = archs[arch] or {}
    spec = variants.get(name, {}) if name != arch else {}
    config = architecture_config(arch).replace(**(spec.get("config") or {}))
    region_map = {**reg.get("region_layer_map", {}), **(arch_spec.get("region_layer_map") or {}),
                  **(spec.get("region_layer_map") or {})}
    weights = None
    if spec.get("weights"):
        hub_spec = spec["weights"].get("hub")
        weights = Weights(**{**spec["weights"], "hub": HubFile(**hub_spec) if hub_spec else None})
    data = spec.get("data")
    preprocessing = Preprocessing(config.input_size, *DATASET_STATS[data.partition(":")[0]]) if data \
        else Preprocessing(config.input_size)
    temporal = {**reg.get("temporal", {}), **(spec.get("temporal") or {})}
    return ModelEntry(name=name, arch=arch, config=config, region_layer_map=region_map,
                      preprocessing=preprocessing, temporal=temporal, weights=weights, data=data)


def build(config: ModelConfig) -> nn.Module:
    """A freshly initialised model for ``config``."""
    return ARCHITECTURES[config.arch](config)


def create_model(name: str, pretrained: bool = False, weights: Optional[PathLike] = None, **overrides) -> nn.Module:
    """Build a registered model.

    Args:
        name: ``arch`` or ``arch.tag`` (see ``list_models()``).
        pretrained: load the variant's registered weights (sha256-checked; hub-hosted
            ones from their cache, else downloaded; ``WeightsUnavailable`` offline).
        weights: load this checkpoint file instead; the model takes the checkpoint's
            own config (its architecture must be ``name``'s).
        **overrides: ModelConfig fields, e.g. ``timesteps=8``, ``width=0.5``,
            ``stem="small"``, ``num_classes=10``, ``input_size=32``,
            ``neuron={"tau": 3.0}``.
    """
    entry = resolve(name)
    if weights is not None:
        config, state = read_checkpoint(weights)
        if config.arch != entry.arch:
            raise CheckpointError(f"{weights} holds a {config.arch}, not a {entry.arch}")
        model = build(config.replace(**overrides))
        load_state(model, state, str(weights))
        return model
    model = build(entry.config.replace(**overrides))
    if pretrained:
        if entry.weights is None:
            raise CheckpointError(f"{entry.name} has no registered weights; "
                                  f"variants with weights: {', '.join(n for n in list_models() if '.' in n) or 'none'}")
        path, state = _registered_state(entry)
        load_state(model, state, str(path))
    return model


def _registered_state(entry: ModelEntry) -> tuple[Path, dict]:
    """Local file and state_dict of a variant's registered weights, sha256-checked. Hub
    weights without a registered sha256 load with a warning that names their sha256."""
    weights = entry.weights
    if weights.path is not None:
        path = REGISTRY_PATH.parent / weights.path
        return path, read_checkpoint(path, expected_sha256=weights.sha256)[1]
    path = hub_file(weights.hub) if weights.hub else torchvision_file(weights.torchvision)
    if weights.sha256 is None:
        warnings.warn(f"{entry.name}: weights {weights.source} ({path}) are not pinned; after checking them, "
                      f"record `sha256: {sha256_file(path)}` under variants.{entry.name}.weights in {REGISTRY_PATH}",
                      stacklevel=3)
    return path, read_state_dict(path, expected_sha256=weights.sha256)


def load_variant(name: str, weights: Optional[PathLike] = None) -> tuple[ModelEntry, nn.Module, str]:
    """Registry entry, model and the sha256 identifying its weights: the checkpoint file
    ``weights`` when given, else the variant's registered weights (sha256-checked), else
    its initialisation (the sha256 of its state, as for unpinned hub weights)."""
    entry = resolve(name)
    if weights is not None:
        return entry, create_model(name, weights=weights), sha256_file(weights)
    if entry.weights is not None:
        model = create_model(name, pretrained=True)
        return entry, model, entry.weights.sha256 or state_sha256(model)
    model = create_model(name)
    return entry, model, state_sha256(model)


def load_model(path: PathLike, expected_sha256: Optional[str] = None) -> nn.Module:
    """Rebuild a model from a checkpoint file written by ``checkpoint.save_model``."""
    config, state = read_checkpoint(path, expected_sha256)
    model = build(config)
    load_state(model, state, str(path))
    return model
