"""Local neural-data packs: a StimulusSet and a neural assembly with repetitions, scored
by Brain-Score's own ``NeuralBenchmark`` (PLS) and ``RSABenchmark`` (RDM).

A pack is a directory:

    pack.json      {"name": str, "region": "V1"|"V2"|"V4"|"IT", "visual_degrees": 8,
                    "time_bin": [70, 170], "stratification": "object_name" or null}
    stimuli.csv    stimulus_id, filename (relative to the pack), further columns (e.g. the
                   stratification column); every column reaches the model's assembly
    assembly.nc    netCDF DataArray, dims (presentation, neuroid): one row per repetition
                   of a stimulus. presentation coords: stimulus_id, repetition (and the
                   stratification column); neuroid coords: neuroid_id (and subject, which
                   enables the RDM benchmark)

``write_pack`` writes this format; ``pack_benchmarks`` builds the benchmarks.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr
from PIL import Image

os.environ.setdefault("BS_INSTALL_DEPENDENCIES", "no")  # before brainscore is imported

from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly  # noqa: E402
from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet  # noqa: E402
from brainscore_vision import load_ceiling, load_metric  # noqa: E402
from brainscore_vision.benchmark_helpers.neural_common import (NeuralBenchmark, RSABenchmark,  # noqa: E402
                                                               average_repetition)

from tdsnn.checkpoint import atomic_write  # noqa: E402
from tdsnn.data import DataError  # noqa: E402

REGIONS = ("V1", "V2", "V4", "IT")
DEFAULT_TIME_BIN = (70, 170)


class PackError(DataError):
    """A neural-data pack that does not follow the format (the message names what is wrong)."""


def write_pack(folder, name: str, region: str, images: torch.Tensor, stimuli: pd.DataFrame, responses: np.ndarray,
               subjects: Optional[Sequence[str]] = None, stratification: Optional[str] = "object_name",
               visual_degrees: float = 8, time_bin: tuple[int, int] = DEFAULT_TIME_BIN) -> Path:
    """Write a pack: images ``[N, 3, S, S]`` in [0, 1] (saved as PNG), ``stimuli`` (one row
    per image with a ``stimulus_id`` column and any others), responses ``[R, N, K]``
    (repetitions x stimuli x neuroids) and optional per-neuroid subjects ``[K]``."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    reps, n, k = responses.shape
    if len(images) != n or len(stimuli) != n:
        raise PackError(f"{len(images)} images and {len(stimuli)} stimulus rows do not match {n} response columns")
    table = stimuli.reset_index(drop=True).copy()
    table["filename"] = [f"images/{sid}.png" for sid in table["stimulus_id"]]
    for sid, image in zip(table["stimulus_id"], images):
        pixels = (image.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"{sid}.png")
    table.to_csv(folder / "stimuli.csv", index=False)
    coords = {"stimulus_id": ("presentation", np.tile(table["stimulus_id"].to_numpy(), reps)),
              "repetition": ("presentation", np.repeat(np.arange(reps), n)),
              "neuroid_id": ("neuroid", [f"{name}_{i}" for i in range(k)])}
    if stratification:
        coords[stratification] = ("presentation", np.tile(table[stratification].to_numpy(), reps))
    if subjects is not None:
        coords["subject"] = ("neuroid", list(subjects))
    data = xr.DataArray(responses.reshape(reps * n, k).astype(np.float32), dims=("presentation", "neuroid"),
                        coords=coords)
    atomic_write(folder / "assembly.nc", lambda tmp: data.to_netcdf(tmp))
    meta = {"name": name, "region": region, "visual_degrees": visual_degrees, "time_bin": list(time_bin),
            "stratification": stratification}
    atomic_write(folder / "pack.json", lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
    return folder


def read_pack(folder) -> tuple[dict, StimulusSet, NeuroidAssembly]:
    """(pack.json, StimulusSet, assembly with repetitions) of a pack; ``PackError`` names
    the missing file, column or coordinate."""
    folder = Path(folder)
    for file in ("pack.json", "stimuli.csv", "assembly.nc"):
        if not (folder / file).is_file():
            raise PackError(f"neural-data pack {folder}: missing {file} (see harness/neural_pack.py for the format)")
    meta = json.loads((folder / "pack.json").read_text())
    missing = [key for key in ("name", "region") if key not in meta]
    if missing:
        raise PackError(f"{folder}/pack.json: missing {', '.join(missing)}")
    if meta["region"] not in REGIONS:
        raise PackError(f"{folder}/pack.json: region {meta['region']!r} is not one of {', '.join(REGIONS)}")
    table = pd.read_csv(folder / "stimuli.csv")
    for column in ("stimulus_id", "filename", *([meta["stratification"]] if meta.get("stratification") else [])):
        if column not in table:
            raise PackError(f"{folder}/stimuli.csv: missing column {column!r}")
    paths = {sid: str(folder / f) for sid, f in zip(table["stimulus_id"], table["filename"])}
    absent = [p for p in paths.values() if not Path(p).is_file()]
    if absent:
        raise PackError(f"{folder}: {len(absent)} stimulus files are missing, e.g. {absent[0]}")
    stimulus_set = StimulusSet(table.drop(columns="filename"))
    stimulus_set.stimulus_paths = paths
    digest = hashlib.sha256((folder / "assembly.nc").read_bytes()).hexdigest()[:8]
    stimulus_set.identifier = f"tdsnn.pack.{meta['name']}-{digest}"
    with xr.open_dataarray(folder / "assembly.nc") as opened:
        data = opened.load()
    if set(data.dims) != {"presentation", "neuroid"}:
        raise PackError(f"{folder}/assembly.nc: dims must be (presentation, neuroid), got {data.dims}")
    for coord in ("stimulus_id", "repetition", "neuroid_id"):
        if coord not in data.coords:
            raise PackError(f"{folder}/assembly.nc: missing coordinate {coord!r}")
    start, end = meta.get("time_bin", DEFAULT_TIME_BIN)
    coords = {name: (c.dims[0], c.values) for name, c in data.coords.items()}
    coords["region"] = ("neuroid", [meta["region"]] * data.sizes["neuroid"])
    coords.update(time_bin_start=("time_bin", [start]), time_bin_end=("time_bin", [end]))
    assembly = NeuroidAssembly(data.values[:, :, None], coords=coords, dims=["presentation", "neuroid", "time_bin"])
    assembly = assembly.squeeze("time_bin")
    assembly.attrs["stimulus_set"] = stimulus_set
    assembly.attrs["stimulus_set_identifier"] = stimulus_set.identifier
    return meta, stimulus_set, assembly


def pack_benchmarks(folder) -> dict:
    """``{identifier: benchmark}`` of a pack: PLS with the internal-consistency ceiling, and
    RDM when the neuroids carry ``subject``. Identifiers hold the assembly's sha256, so
    Brain-Score's ceiling cache never mixes two versions of a pack."""
    meta, stimulus_set, repeated = read_pack(folder)
    averaged = type(repeated)(average_repetition(repeated))
    region, degrees = meta["region"], meta.get("visual_degrees", 8)
    stratification = meta.get("stratification")
    cv = {"stratification_coord": stratification}
    n_images = len(stimulus_set)
    strata = stimulus_set[stratification].nunique() if stratification else 1
    if round(0.1 * n_images) < strata:  # sklearn needs at least one test stimulus per stratum
        cv["train_size"] = 1 - strata / n_images
    ceiler = load_ceiling("internal_consistency")
    base = stimulus_set.identifier.replace("tdsnn.pack.", "local.")
    benchmarks = {f"{base}.{region}-pls": NeuralBenchmark(
        identifier=f"{base}.{region}-pls", version=1, assembly=averaged, visual_degrees=degrees, number_of_trials=1,
        similarity_metric=load_metric("pls", crossvalidation_kwargs=cv), ceiling_func=lambda: ceiler(repeated),
        parent=region, bibtex=None)}
    neuroid_levels = repeated.indexes["neuroid"].names if "neuroid" in repeated.indexes else []
    if "subject" in repeated.coords or "subject" in neuroid_levels:
        benchmarks[f"{base}.{region}-rdm"] = RSABenchmark(
            identifier=f"{base}.{region}-rdm", version=1, assembly=averaged, region=region, visual_degrees=degrees,
            number_of_trials=1, bibtex=None)
    return benchmarks
