"""Scoring suites. Each suite module defines

    settings(subject, options) -> dict   the options its result depends on (part of the cache key)
    run(subject, options) -> dict        {"metrics": {key: float}, "unavailable": {key: reason},
                                          "details": {...}, "arrays": {...}}

``metrics`` are the numbers of the tables; ``unavailable`` names what could not be
measured and why (missing data, no network); ``details`` hold the rest of the
JSON-serialisable record; ``arrays`` hold per-unit data for the figures (kept in the
cache, left out of ``results.json``). Metrics that do not apply to a model (spike
entropy of an ANN) are simply absent.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Optional

import torch
from torch import nn

from tdsnn.analysis.robustness import RobustnessConfig
from tdsnn.data import Preprocessing
from tdsnn.registry import ModelEntry

class Unavailable(RuntimeError):
    """Something could not be measured and ``Options.strict`` asks for an error."""


#: Suites in the order they run and appear in tables.
SUITES = ("accuracy", "topography", "robustness", "temporal", "brainscore")


@dataclass
class Subject:
    """A model under test: its registry entry, the network (on ``device``), the sha256
    identifying its weights and the ``--weights`` file when one overrides the registry."""
    name: str
    entry: ModelEntry
    model: nn.Module
    sha256: str
    device: torch.device
    weights: Optional[str] = None

    @property
    def preprocessing(self) -> Preprocessing:
        """The entry's normalisation at the network's own input size."""
        pre = self.entry.preprocessing
        return Preprocessing(self.model.config.input_size, pre.mean, pre.std)


@dataclass
class Options:
    """Options of a harness run (``harness/score.py`` flags).

    data: dataset spec (``tdsnn.data``) overriding the weights' data tag; limit: use only
    the first N test images for accuracy; categories: fLoc-style category folders for IT
    selectivity (default: ``category_images`` test images per class of the weights'
    dataset); benchmarks: Brain-Score benchmark ids (None: the TopoNets list);
    neural_data: local neural-data packs; robustness_images: test images attacked;
    entropy_timesteps: inference T for spike entropy; strict: unavailable data is an error.
    """
    data: Optional[str] = None
    limit: Optional[int] = None
    categories: Optional[Path] = None
    category_images: int = 50
    benchmarks: Optional[list[str]] = None
    neural_data: list[Path] = field(default_factory=list)
    robustness: RobustnessConfig = field(default_factory=RobustnessConfig)
    robustness_images: int = 500
    entropy_timesteps: tuple[int, ...] = (1, 2, 4, 8)
    batch_size: int = 64
    strict: bool = False
    progress: bool = True


def suite(name: str) -> ModuleType:
    """The module of suite ``name`` (imported on first use: brainscore is slow to import)."""
    if name not in SUITES:
        raise KeyError(f"unknown suite {name!r}; valid: {', '.join(SUITES)}")
    return importlib.import_module(f"{__name__}.{name}")
