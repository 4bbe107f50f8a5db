"""The neural-data pack format and its rules.

A pack is a directory

    pack.json     {"name": "mypack",              one name part (tdsnn.names: lower-case
                                                  letters, digits, "_" and "-")
                   "region": "IT",                V1 | V2 | V4 | IT (the model region scored)
                   "visual_degrees": 8,           size of the images on the screen (deg)
                   "metric": ["pls", "rdm"],      "pls" and/or "rdm" (the first is the primary)
                   "stratification": "object_name",  presentation coordinate the PLS
                                                  cross-validation stratifies on, or null
                   "time_bin": [70, 170]}         recording window in ms (optional)
    stimuli.csv   one row per image: stimulus_id, filename (relative to the pack directory),
                  the stratification column, any other columns; every column becomes a
                  presentation coordinate of the model's responses
    images/...    the image files that stimuli.csv names (any format PIL reads)
    assembly.nc   netCDF (xarray DataArray) with dims (presentation, neuroid): one row per
                  presentation of a stimulus (so a stimulus shown R times has R rows).
                  presentation coords: stimulus_id, repetition (at least two distinct
                  values: the ceiling is split-half over repetitions) and the stratification
                  coordinate; neuroid coords: neuroid_id (unique), region (optional; must
                  equal pack.json's) and subject (needed for "rdm": at least two subjects,
                  since its ceiling compares subjects)

Every file a pack names lies inside its directory once symlinks are resolved (no ``..``, no
absolute paths, no links out), and every response is a finite number. netCDF is written
and read with xarray's default engine (netCDF4, a dependency of brainscore-core).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from tdsnn.data import DataError
from tdsnn.names import InvalidName, check_part
from tdsnn.regions import REGIONS

PACK_FILE, STIMULI_FILE, ASSEMBLY_FILE, IMAGES_DIR = "pack.json", "stimuli.csv", "assembly.nc", "images"
METRICS = ("pls", "rdm")
DEFAULT_TIME_BIN = (70, 170)
DEFAULT_VISUAL_DEGREES = 8


class PackError(DataError):
    """A neural-data pack that does not follow the format (the message names what is wrong)."""


def metrics_of(meta: dict) -> tuple[str, ...]:
    """The metrics pack.json asks for (``"metric"``: one name or a list; default ``pls``)."""
    metric = meta.get("metric", "pls")
    return tuple([metric] if isinstance(metric, str) else metric)


def _finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_meta(meta: dict, folder: Path) -> None:
    """``PackError`` naming the first field of pack.json (of pack ``folder``) that breaks the format."""
    where = f"{folder}/{PACK_FILE}"
    missing = [key for key in ("name", "region") if key not in meta]
    if missing:
        raise PackError(f"{where}: missing {', '.join(missing)}")
    try:
        check_part(meta["name"], "pack name")
    except InvalidName as err:
        raise PackError(f"{where}: {err}") from err
    if meta["region"] not in REGIONS:
        raise PackError(f"{where}: region {meta['region']!r} is not one of {', '.join(REGIONS)}")
    metrics = metrics_of(meta)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise PackError(f"{where}: metric {meta.get('metric')!r} must be one or more of {', '.join(METRICS)}")
    degrees = meta.get("visual_degrees", DEFAULT_VISUAL_DEGREES)
    if not _finite_number(degrees) or degrees <= 0:
        raise PackError(f"{where}: visual_degrees must be a positive finite number, got {degrees!r}")
    time_bin = meta.get("time_bin", DEFAULT_TIME_BIN)
    if (not isinstance(time_bin, (list, tuple)) or len(time_bin) != 2
            or not all(_finite_number(t) for t in time_bin) or time_bin[0] >= time_bin[1]):
        raise PackError(f"{where}: time_bin must be [start_ms, end_ms] (finite, start < end), got {time_bin!r}")
    strat = meta.get("stratification")
    if strat is not None and not isinstance(strat, str):
        raise PackError(f"{where}: stratification must be a column name or null, got {strat!r}")


def member(folder: Path, name: str, where: str) -> Path:
    """The resolved path of file ``name`` (relative to pack ``folder``, symlinks followed);
    ``PackError`` (naming ``where`` the name came from) when it lies outside the folder."""
    root = Path(folder).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise PackError(f"{where}: {name!r} lies outside the pack folder (every file of a pack must be inside it)")
    return path


def check_finite(values: np.ndarray, where: str, labels: Sequence[tuple[str, Sequence]]) -> None:
    """``PackError`` when ``values`` hold NaN or inf, naming the first such entry by
    ``labels``: one ``(coordinate, value per index)`` pair per axis of ``values``."""
    bad = ~np.isfinite(values)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        at = ", ".join(f"{coord} {names[i]!r}" for (coord, names), i in zip(labels, first))
        raise PackError(f"{where}: {int(bad.sum())} of {bad.size} responses are NaN or infinite "
                        f"(the first at {at}: {values[first]}); responses must be finite numbers")
