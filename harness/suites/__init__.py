"""Scoring suites. Each suite is a module of this package that satisfies ``Suite``:

    settings(subject, options) -> dict         what its result depends on besides the model
                                               and the code (part of the cache key)
    run(subject, options) -> SuiteResult       metrics, their spread, reasons for unavailable
                                               metrics, details and per-unit arrays

Metric and array keys are the constants of ``harness.suites.keys``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Protocol

import torch
from torch import nn

from tdsnn.analysis.robustness import RobustnessConfig
from tdsnn.data import Preprocessing
from tdsnn.registry import ModelEntry

from .keys import SUITES
from .result import Cell, ResultShapeError, SuiteResult

__all__ = ["Cell", "Options", "ResultShapeError", "SUITES", "Subject", "Suite", "SuiteResult", "Unavailable", "suite"]


class Unavailable(RuntimeError):
    """Something could not be measured and ``Options.strict`` asks for an error."""


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
        return self.entry.preprocessing.at(self.model.config.input_size)


@dataclass
class Options:
    """Options of a harness run (``harness/score.py`` flags).

    data: dataset spec (``tdsnn.data``) overriding the weights' data tag; limit: use only
    the first N test images for accuracy; categories: fLoc-style category folders for IT
    selectivity (default: ``category_images`` test images per class of the weights'
    dataset); benchmarks: Brain-Score benchmark ids (None: the TopoNets list);
    neural_data: local neural-data packs; robustness_images: test images attacked;
    entropy_timesteps: inference T for spike entropy; fisher_images / timestep_images:
    the first N test images of Fisher information over time / accuracy against inference T;
    strict: unavailable data is an error.
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
    fisher_images: int = 64
    timestep_images: int = 200
    batch_size: int = 64
    strict: bool = False
    progress: bool = True


class Suite(Protocol):
    """A scoring suite: the module ``harness.suites.<name>`` of each name in ``SUITES``."""

    def settings(self, subject: Subject, options: Options) -> dict:
        """The options and data versions the result depends on (JSON-serialisable)."""

    def run(self, subject: Subject, options: Options) -> SuiteResult:
        """Measure ``subject``; leaves its model as it was."""


def suite(name: str) -> Suite:
    """The module of suite ``name`` (imported on first use: brainscore is slow to import)."""
    if name not in SUITES:
        raise KeyError(f"unknown suite {name!r}; valid: {', '.join(SUITES)}")
    return importlib.import_module(f"{__name__}.{name}")
