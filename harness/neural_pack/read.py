"""Reading and validating neural-data packs (the format: ``harness/neural_pack/format.py``).

``read_pack`` checks a pack against the format (a ``PackError`` names the missing or
malformed file, column, coordinate or value) and returns a ``NeuralPack``: its metadata,
a Brain-Score ``StimulusSet`` and its response assemblies. ``pack_digest`` hashes the
pack's files; identifiers carry it, so Brain-Score's caches (activations, ceilings: keyed
by identifier) never mix two versions of a pack.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import brainscore_plugin  # noqa: F401  (configures Brain-Score before it is imported)
import numpy as np
import pandas as pd
import xarray as xr
from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet
from brainscore_vision.benchmark_helpers.neural_common import average_repetition

from .format import (ASSEMBLY_FILE, DEFAULT_TIME_BIN, DEFAULT_VISUAL_DEGREES, PACK_FILE, STIMULI_FILE, PackError,
                     check_finite, check_meta, member, metrics_of)


@dataclass
class NeuralPack:
    """A loaded pack.

    repetitions: ``presentation x neuroid`` assembly with one row per repetition (the
    ceiling's input); averaged: the repetition-averaged assembly the metrics compare with;
    benchmarks: ``{metric: benchmark}`` in the order of ``metrics`` (empty from
    ``read_pack``, filled by ``load_pack``).
    """
    folder: Path
    name: str
    region: str
    visual_degrees: float
    metrics: tuple[str, ...]
    stratification: Optional[str]
    time_bin: tuple[float, float]
    digest: str
    stimulus_set: StimulusSet
    repetitions: NeuroidAssembly
    averaged: NeuroidAssembly
    benchmarks: dict = field(default_factory=dict)

    def key(self, metric: str) -> str:
        """Result key of one metric: ``local:<name>`` for the primary (first) metric,
        ``local:<name>:<metric>`` for the others."""
        return f"local:{self.name}" if metric == self.metrics[0] else f"local:{self.name}:{metric}"

    def identifier(self, metric: str) -> str:
        """Benchmark identifier: ``local.<name>-<sha8>.<region>-<metric>``."""
        return f"local.{self.name}-{self.digest[:8]}.{self.region}-{metric}"


def pack_digest(folder) -> str:
    """sha256 of pack.json, stimuli.csv, assembly.nc and the images stimuli.csv names
    (missing files and files outside the pack hash as absent, unread, so this never fails)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    names = [PACK_FILE, STIMULI_FILE, ASSEMBLY_FILE]
    try:
        names += sorted(pd.read_csv(member(folder, STIMULI_FILE, str(folder)), dtype=str)["filename"].dropna().tolist())
    except (OSError, KeyError, ValueError, pd.errors.ParserError, PackError):
        pass
    for name in names:
        try:
            path = member(folder, name, str(folder))
        except PackError:
            path = None
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path is not None and path.is_file() else b"<absent>")
    return digest.hexdigest()


def stimulus_set(folder: Path, table: pd.DataFrame, identifier: str) -> StimulusSet:
    """The StimulusSet of stimuli.csv's ``table``: its columns, and the resolved paths of its
    files (``PackError`` for one outside the pack)."""
    where = f"{folder}/{STIMULI_FILE}"
    stimuli = StimulusSet(table.drop(columns="filename").reset_index(drop=True))
    stimuli.stimulus_paths = {sid: str(member(folder, name, where))
                              for sid, name in zip(table["stimulus_id"], table["filename"])}
    stimuli.identifier = identifier
    return stimuli


def _read_meta(folder: Path) -> dict:
    if not folder.is_dir():
        raise PackError(f"neural-data pack {folder}: not a directory")
    for file in (PACK_FILE, STIMULI_FILE, ASSEMBLY_FILE):
        if not member(folder, file, str(folder)).is_file():
            raise PackError(f"neural-data pack {folder}: missing {file} (format: see harness/neural_pack/format.py)")
    try:
        meta = json.loads(member(folder, PACK_FILE, str(folder)).read_text())
    except json.JSONDecodeError as err:
        raise PackError(f"{folder}/{PACK_FILE}: not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise PackError(f"{folder}/{PACK_FILE}: expected a JSON object")
    check_meta(meta, folder)
    return meta


def _read_stimuli(folder: Path, strat: Optional[str]) -> tuple[pd.DataFrame, StimulusSet]:
    """stimuli.csv and its StimulusSet (identifier still unset), every image inside the pack and present."""
    where = f"{folder}/{STIMULI_FILE}"
    columns = ("stimulus_id", "filename", *([strat] if strat else []))
    try:
        table = pd.read_csv(member(folder, STIMULI_FILE, str(folder)), dtype=dict.fromkeys(columns, str))
    except (ValueError, pd.errors.ParserError) as err:
        raise PackError(f"{where}: unreadable ({err})") from err
    for column in columns:
        if column not in table:
            raise PackError(f"{where}: missing column {column!r}")
    empty = [column for column in columns if table[column].isna().any()]
    if empty:
        raise PackError(f"{where}: empty values in column(s) {', '.join(map(repr, empty))}")
    if table["stimulus_id"].duplicated().any():
        raise PackError(f"{where}: duplicate stimulus_id {table['stimulus_id'][table['stimulus_id'].duplicated()].iloc[0]!r}")
    stimuli = stimulus_set(folder, table, "")
    absent = [name for name, sid in zip(table["filename"], table["stimulus_id"])
              if not Path(stimuli.stimulus_paths[sid]).is_file()]
    if absent:
        raise PackError(f"{folder}: {len(absent)} image file(s) named in {STIMULI_FILE} are missing, e.g. {absent[0]}")
    return table, stimuli


def _read_responses(folder: Path, meta: dict) -> tuple[np.ndarray, dict]:
    """assembly.nc's responses ``[presentation, neuroid]`` (float64, finite) and coordinates
    (``{name: (dim, values)}``, region set to pack.json's)."""
    where = f"{folder}/{ASSEMBLY_FILE}"
    region, strat = meta["region"], meta.get("stratification")
    try:
        with xr.open_dataset(member(folder, ASSEMBLY_FILE, str(folder))) as opened:
            dataset = opened.load()
    except (OSError, ValueError) as err:
        raise PackError(f"{where}: not readable as netCDF ({type(err).__name__}: {err})") from err
    # the responses: the one variable over (presentation, neuroid); other variables are coordinates
    # (whether or not the file marks them so)
    candidates = [v for v in dataset.data_vars if set(dataset[v].dims) == {"presentation", "neuroid"}]
    if len(candidates) != 1:
        found = ", ".join(f"{v}{dataset[v].dims}" for v in dataset.data_vars) or "no variables"
        raise PackError(f"{where}: dims must be (presentation, neuroid) for exactly one variable (the responses); "
                        f"found {found}")
    data = dataset.set_coords([v for v in dataset.data_vars if v != candidates[0]])[candidates[0]]
    data = data.transpose("presentation", "neuroid")
    required = {"stimulus_id": "presentation", "repetition": "presentation", "neuroid_id": "neuroid",
                **({strat: "presentation"} if strat else {})}
    if "rdm" in metrics_of(meta):
        required["subject"] = "neuroid"
    for coord, dim in required.items():
        if coord not in data.coords:
            why = " (the rdm metric compares subjects)" if coord == "subject" else ""
            raise PackError(f"{where}: missing coordinate {coord!r} on {dim}{why}")
        if data[coord].dims != (dim,):
            raise PackError(f"{where}: coordinate {coord!r} must lie on {dim}, not {data[coord].dims}")
    coords = {name: (c.dims[0], c.values) for name, c in data.coords.items()
              if name not in data.dims and len(c.dims) == 1}
    coords["stimulus_id"] = ("presentation", data["stimulus_id"].values.astype(str))
    if strat:
        coords[strat] = ("presentation", data[strat].values.astype(str))
    if "region" in data.coords:
        regions = set(np.asarray(data["region"].values).astype(str))
        if regions != {region}:
            raise PackError(f"{where}: region coordinate {sorted(regions)} does not match pack.json's {region!r}")
    coords["region"] = ("neuroid", np.array([region] * data.sizes["neuroid"]))
    ids = coords["neuroid_id"][1]
    if len(set(ids)) != len(ids):
        raise PackError(f"{where}: neuroid_id values are not unique")
    if len(np.unique(data["repetition"].values)) < 2:
        raise PackError(f"{where}: needs at least 2 distinct repetition values (the ceiling is split-half)")
    if "rdm" in metrics_of(meta) and len(np.unique(data["subject"].values)) < 2:
        raise PackError(f"{where}: the rdm metric needs at least 2 subjects (its ceiling compares subjects)")
    try:
        values = np.asarray(data.values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise PackError(f"{where}: responses must be numbers, got {data.dtype}") from err
    check_finite(values, where, [("stimulus_id", coords["stimulus_id"][1]), ("neuroid_id", ids)])
    return values, coords


def _check_same_stimuli(where: str, coords: dict, table: pd.DataFrame, strat: Optional[str]) -> None:
    """The assembly's stimuli (and their strata) are stimuli.csv's."""
    recorded, shown = set(coords["stimulus_id"][1]), set(table["stimulus_id"])
    if recorded != shown:
        extra, unrecorded = sorted(recorded - shown), sorted(shown - recorded)
        raise PackError(f"{where}: stimulus_id values differ from {STIMULI_FILE}'s: "
                        + "; ".join(part for part in (
                            f"{len(extra)} not in {STIMULI_FILE} (e.g. {extra[0]!r})" if extra else "",
                            f"{len(unrecorded)} without responses (e.g. {unrecorded[0]!r})" if unrecorded else "")
                            if part))
    if strat:
        pairs = pd.DataFrame({"stimulus_id": coords["stimulus_id"][1], strat: coords[strat][1]}).drop_duplicates()
        merged = pairs.merge(table[["stimulus_id", strat]], on="stimulus_id", suffixes=("", "_csv"))
        if (merged[strat] != merged[f"{strat}_csv"]).any() or pairs["stimulus_id"].duplicated().any():
            raise PackError(f"{where}: coordinate {strat!r} disagrees with {STIMULI_FILE} for some stimulus_id")


def read_pack(folder) -> NeuralPack:
    """A pack's metadata, StimulusSet and assemblies (no benchmarks), checked against the
    format; ``PackError`` names the missing or malformed file, column, coordinate or value.
    Only files inside the pack folder are read."""
    folder = Path(folder)
    meta = _read_meta(folder)
    strat = meta.get("stratification")
    table, stimuli = _read_stimuli(folder, strat)
    values, coords = _read_responses(folder, meta)
    _check_same_stimuli(f"{folder}/{ASSEMBLY_FILE}", coords, table, strat)

    digest = pack_digest(folder)
    stimuli.identifier = f"tdsnn.pack.{meta['name']}-{digest[:12]}"
    start, end = meta.get("time_bin", DEFAULT_TIME_BIN)
    coords.update(time_bin_start=("time_bin", [start]), time_bin_end=("time_bin", [end]))
    repetitions = NeuroidAssembly(values[:, :, None], coords=coords,
                                  dims=["presentation", "neuroid", "time_bin"]).squeeze("time_bin")
    repetitions.attrs["stimulus_set"] = stimuli
    repetitions.attrs["stimulus_set_identifier"] = stimuli.identifier
    averaged = type(repetitions)(average_repetition(repetitions))
    return NeuralPack(folder=folder, name=meta["name"], region=meta["region"],
                      visual_degrees=float(meta.get("visual_degrees", DEFAULT_VISUAL_DEGREES)),
                      metrics=metrics_of(meta), stratification=strat, time_bin=(start, end), digest=digest,
                      stimulus_set=stimuli, repetitions=repetitions, averaged=averaged)
