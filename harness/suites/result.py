"""The result of one suite on one model: metrics, their spread, why some are unavailable,
details and per-unit arrays, with checked keys (``harness.suites.keys``)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Iterable, Optional

import numpy as np
import torch

from .keys import ARRAYS, METRICS, SUITES


class ResultShapeError(ValueError):
    """Stored data that is not a suite result (a cache file of another shape or version)."""


def jsonable(value: Any) -> Any:
    """numpy/torch values -> JSON types; NaN and inf -> None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


@dataclass(frozen=True)
class Cell:
    """One metric of one model: its value (None: none), the value's spread (SEM, where the
    suite measured one) and the reason it is unavailable (None: it is not)."""
    value: Optional[float] = None
    sem: Optional[float] = None
    reason: Optional[str] = None


@dataclass
class SuiteResult:
    """What a suite measured on one model.

    metrics: table numbers by key (NaN where a metric came out undefined); sem: standard
    error of the mean of a metric, only for metrics whose suite measured a spread;
    unavailable: metric key -> why it could not be measured (missing data, no network);
    details: the rest of the JSON-serialisable record; arrays: per-unit data for the
    figures (kept in the cache, left out of ``results.json``); run_keys: metric keys of this
    run beyond the suite's fixed ``METRICS`` (Brain-Score benchmark ids, local packs).
    Metrics that do not apply to a model (spike entropy of an ANN) are simply absent.
    """
    suite: str
    metrics: dict[str, float] = field(default_factory=dict)
    sem: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, Any] = field(default_factory=dict)
    run_keys: tuple[str, ...] = ()
    seconds: Optional[float] = None
    cached: bool = False

    def __post_init__(self):
        if self.suite not in SUITES:
            raise KeyError(f"unknown suite {self.suite!r}; valid: {', '.join(SUITES)}")
        self.run_keys = tuple(self.run_keys)
        for key in (*self.metrics, *self.unavailable):
            self._check(key)
        for key in self.sem:
            if key not in self.metrics:
                raise KeyError(f"{self.suite}: a spread for {key!r}, which has no value")
        for key in self.arrays:
            if key not in ARRAYS[self.suite]:
                raise KeyError(f"{key!r} is not an array of the {self.suite} suite; valid: "
                               f"{', '.join(ARRAYS[self.suite]) or 'none'}")

    def _check(self, key: str) -> str:
        if key not in METRICS[self.suite] and key not in self.run_keys:
            raise KeyError(f"{key!r} is not a metric of the {self.suite} suite; valid: "
                           f"{', '.join((*METRICS[self.suite], *self.run_keys))}")
        return key

    def set(self, key: str, value: float, sem: Optional[float] = None) -> None:
        """Record metric ``key`` (and its SEM when measured)."""
        self.metrics[self._check(key)] = float(value)
        if sem is not None:
            self.sem[key] = float(sem)
        self.unavailable.pop(key, None)

    def set_array(self, key: str, value: Any) -> None:
        if key not in ARRAYS[self.suite]:
            raise KeyError(f"{key!r} is not an array of the {self.suite} suite")
        self.arrays[key] = value

    def mark_unavailable(self, reason: str, keys: Optional[Iterable[str]] = None) -> None:
        """Record why ``keys`` (default: all the suite's fixed metrics) could not be measured."""
        for key in METRICS[self.suite] if keys is None else keys:
            self.unavailable[self._check(key)] = reason

    def cell(self, key: str) -> Cell:
        """Metric ``key``'s value, SEM and reason it is unavailable."""
        self._check(key)
        if key in self.metrics:
            return Cell(self.metrics[key], self.sem.get(key))
        return Cell(reason=self.unavailable.get(key))

    def reasons(self) -> dict[str, list[str]]:
        """Each distinct reason -> the metric keys it makes unavailable."""
        grouped: dict[str, list[str]] = {}
        for key, why in self.unavailable.items():
            grouped.setdefault(why, []).append(key)
        return grouped

    def to_json(self, arrays: bool = True) -> dict:
        """JSON types only (NaN -> null); ``arrays=False`` leaves the per-unit data out."""
        data = {"suite": self.suite, "metrics": self.metrics, "sem": self.sem, "unavailable": self.unavailable,
                "details": self.details, "run_keys": list(self.run_keys), "seconds": self.seconds,
                "cached": self.cached}
        if arrays:
            data["arrays"] = self.arrays
        return jsonable(data)

    @classmethod
    def from_json(cls, data: Any) -> "SuiteResult":
        """The result ``to_json`` wrote; ``ResultShapeError`` for anything else."""
        def mapping(name: str, values: type | tuple[type, ...]) -> dict:
            found = data.get(name, {})
            if not isinstance(found, dict) or not all(isinstance(v, values) for v in found.values()):
                raise ResultShapeError(f"{name!r} must be an object of {values}")
            return found

        if not isinstance(data, dict) or not isinstance(data.get("suite"), str):
            raise ResultShapeError("not a suite result: expected an object with a 'suite' name")
        number = (Real, type(None))
        metrics = {k: math.nan if v is None else float(v) for k, v in mapping("metrics", number).items()}
        sem = {k: float(v) for k, v in mapping("sem", Real).items()}
        run_keys = data.get("run_keys", [])
        seconds = data.get("seconds")
        if not isinstance(run_keys, list) or not all(isinstance(k, str) for k in run_keys) \
                or not isinstance(seconds, number) or isinstance(seconds, bool):
            raise ResultShapeError("'run_keys' must be a list of names and 'seconds' a number")
        try:
            return cls(suite=data["suite"], metrics=metrics, sem=sem, unavailable=mapping("unavailable", str),
                       details=mapping("details", object), arrays=mapping("arrays", object), run_keys=tuple(run_keys),
                       seconds=seconds, cached=bool(data.get("cached", False)))
        except KeyError as err:
            raise ResultShapeError(str(err)) from err
