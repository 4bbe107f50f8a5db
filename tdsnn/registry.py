"""Model registry: ``model_registry.yaml`` variants -> configs -> models (timm-style).

Names are ``arch`` or ``arch.tag`` (``tdsnn.names``). A bare ``arch`` resolves to the
variant marked ``default: true`` when there is one, else to the architecture's own
defaults; that is the model its ``pretrained=True`` weights and the harness load. Built
without weights, a bare ``arch`` takes the architecture's own defaults (``build_config``),
not a trained recipe's options such as a demo's width. The file in use is
``REGISTRY_PATH``: ``$TDSNN_REGISTRY`` when set, else the one shipped in the package (with
the demo weights in ``weights/`` beside it). It is parsed into typed, checked entries when
first used (``tdsnn.registry_file``).
"""
from __future__ import annotations

import fnmatch
import functools
import os
import warnings
from pathlib import Path
from typing import Optional

from torch import nn

from . import hub
from .checkpoint import (CheckpointError, PathLike, load_state, read_checkpoint, read_state_dict, sha256_file,
                         state_sha256)
from .config import ModelConfig
from .models import ARCHITECTURES
from .registry_file import ModelEntry, Registry, RegistryError, Weights, load_registry, parse_registry

__all__ = ["ModelEntry", "RegistryError", "UnknownModelError", "Weights", "architecture", "architecture_config",
           "build", "build_config", "create_model", "list_models", "load_model", "load_registry", "load_variant",
           "parse_registry", "resolve", "weights_file"]

#: The registry shipped with the package (its demo weights in ``weights/`` beside it).
PACKAGED_REGISTRY = Path(__file__).resolve().parent / "model_registry.yaml"
#: The registry in use: ``$TDSNN_REGISTRY`` when set, else the packaged one.
REGISTRY_PATH = Path(os.environ.get("TDSNN_REGISTRY") or PACKAGED_REGISTRY)


class UnknownModelError(KeyError):
    """A model name that is neither a registered architecture nor a variant."""

    def __str__(self) -> str:
        return str(self.args[0])


@functools.lru_cache(maxsize=4)
def _read_registry(path: Path) -> Registry:
    return load_registry(path)


def _registry() -> Registry:
    return _read_registry(REGISTRY_PATH)


def list_models(pattern: str = "*") -> list[str]:
    """Architecture and ``arch.tag`` variant names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _registry().entries if fnmatch.fnmatch(n, pattern))


def architecture(arch: str) -> ModelEntry:
    """Architecture ``arch``'s own entry: its registered defaults and maps, before any variant's overrides."""
    archs = _registry().architectures
    if arch not in archs:
        raise UnknownModelError(f"unknown architecture {arch!r}; registered: {', '.join(sorted(archs))}")
    return archs[arch]


def architecture_config(arch: str) -> ModelConfig:
    """The registered defaults of architecture ``arch``, before any variant's overrides."""
    return architecture(arch).config


def resolve(name: str) -> ModelEntry:
    """The registry entry for ``arch`` or ``arch.tag``."""
    entries = _registry().entries
    if name not in entries:
        raise UnknownModelError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return entries[name]


def build_config(name: str) -> ModelConfig:
    """The config ``name`` builds from without weights: an ``arch.tag`` variant's, a bare
    ``arch``'s own registered defaults (not its default variant's)."""
    return resolve(name).config if "." in name else architecture_config(name)


def weights_file(entry: ModelEntry) -> Path:
    """The local file of a variant's ``path`` weights (inside the registry's folder)."""
    if entry.weights is None or entry.weights.path is None:
        raise CheckpointError(f"{entry.name} has no local weights file")
    return REGISTRY_PATH.resolve().parent / entry.weights.path


def build(config: ModelConfig) -> nn.Module:
    """A freshly initialised model for ``config``."""
    return ARCHITECTURES[config.arch](config)


def create_model(name: str, pretrained: bool = False, weights: Optional[PathLike] = None, **overrides) -> nn.Module:
    """Build a registered model.

    Args:
        name: ``arch`` or ``arch.tag`` (see ``list_models()``); without weights a bare
            ``arch`` builds the architecture's own defaults (``build_config``).
        pretrained: load the variant's registered weights, for a bare ``arch`` its default
            variant's, with that variant's config (sha256-checked, and for local
            files their header config checked against the registry; hub-hosted ones from
            their cache, else downloaded; ``WeightsUnavailable`` offline).
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
    model = build((entry.config if pretrained else build_config(name)).replace(**overrides))
    if pretrained:
        if entry.weights is None:
            raise CheckpointError(f"{entry.name} has no registered weights; "
                                  f"variants with weights: {', '.join(n for n in list_models() if '.' in n) or 'none'}")
        path, state = _registered_state(entry)
        load_state(model, state, str(path))
    return model


def _registered_state(entry: ModelEntry) -> tuple[Path, dict]:
    """Local file and state_dict of a variant's registered weights, sha256-checked. A local
    checkpoint's header config must equal the registry entry's. Hub weights without a
    registered sha256 are pinned on first use (``hub.pinned_sha256``) and checked after."""
    weights = entry.weights
    if weights.path is not None:
        path = weights_file(entry)
        config, state = read_checkpoint(path, expected_sha256=weights.sha256)
        differences = config.differences(entry.config)
        if differences:
            raise CheckpointError(f"{path}: its header config differs from the registry entry {entry.name} "
                                  f"({REGISTRY_PATH}:{_registry().lines[entry.name]}) in "
                                  f"{'; '.join(differences)} (header != registry); re-register the weights "
                                  "or correct the entry")
        return path, state
    path = hub.hub_file(weights.hub) if weights.hub else hub.torchvision_file(weights.torchvision)
    if weights.sha256 is not None:
        return path, read_state_dict(path, expected_sha256=weights.sha256)
    digest, first = hub.pinned_sha256(weights.source, path)
    if first:
        warnings.warn(f"{entry.name}: weights {weights.source} ({path}) are not pinned in the registry; their "
                      f"sha256 is now recorded in {hub.pin_file(weights.source)} and checked on every later load. "
                      f"After checking them, record `sha256: {digest}` under variants.{entry.name}.weights "
                      f"in {REGISTRY_PATH}", stacklevel=3)
    return path, read_state_dict(path)


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
