"""Writing neural-data packs (the format: ``harness/neural_pack/format.py``).

``write_pack`` checks everything it is given before it writes a file, so bad input leaves
the target folder as it was; pack.json, stimuli.csv and assembly.nc are each written
atomically.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch
import xarray as xr
from PIL import Image

from tdsnn.checkpoint import atomic_write

from .format import (ASSEMBLY_FILE, DEFAULT_TIME_BIN, DEFAULT_VISUAL_DEGREES, IMAGES_DIR, PACK_FILE, STIMULI_FILE,
                     PackError, check_finite, check_meta)

ImagesLike = Union[torch.Tensor, np.ndarray, Sequence[Union[str, os.PathLike]]]


def pack_meta(folder: Path, name: str, region: str, metrics: Sequence[str], stratification: Optional[str],
              visual_degrees: float, time_bin: tuple[float, float]) -> dict:
    """The checked content of pack.json for the pack in ``folder``."""
    meta = {"name": name, "region": region, "visual_degrees": visual_degrees, "metric": list(metrics),
            "stratification": stratification, "time_bin": list(time_bin)}
    check_meta(meta, folder)
    return meta


def stimulus_table(images: ImagesLike, stimulus_meta: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """The checked stimulus table and its images, ready to write: ``uint8 [H, W, 3]`` arrays
    (from ``[3, H, W]`` or ``[1, H, W]`` values in [0, 1]) or source file paths."""
    table = pd.DataFrame(stimulus_meta).reset_index(drop=True).copy()
    if "stimulus_id" not in table:
        raise PackError("stimulus_meta needs a 'stimulus_id' column")
    table["stimulus_id"] = table["stimulus_id"].astype(str)
    if table["stimulus_id"].duplicated().any():
        raise PackError(f"stimulus_meta: duplicate stimulus_id {table['stimulus_id'][table['stimulus_id'].duplicated()].iloc[0]!r}")
    if len(images) != len(table):
        raise PackError(f"{len(images)} images but {len(table)} rows of stimulus_meta")
    prepared = []
    for i, image in enumerate(images):
        if isinstance(image, (str, os.PathLike)):
            if not Path(image).is_file():
                raise PackError(f"image {i}: no such file {image}")
            prepared.append(Path(image))
            continue
        pixels = torch.as_tensor(image).detach().cpu().float()
        if pixels.ndim != 3 or pixels.shape[0] not in (1, 3):
            raise PackError(f"image {i}: expected [3, H, W] (or [1, H, W]) values in [0, 1], got {tuple(pixels.shape)}")
        prepared.append((pixels.expand(3, -1, -1).permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8))
    return table, prepared


def write_stimuli(folder: Path, table: pd.DataFrame, images: list) -> pd.DataFrame:
    """Write ``stimulus_table``'s images (arrays as PNG, paths copied) and stimuli.csv;
    return the table with its ``filename`` column."""
    (folder / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    names = []
    for i, image in enumerate(images):
        if isinstance(image, Path):
            name = f"{IMAGES_DIR}/{i:05d}{image.suffix.lower() or '.png'}"
            if image.resolve() != (folder / name).resolve():
                shutil.copyfile(image, folder / name)
        else:
            name = f"{IMAGES_DIR}/{i:05d}.png"
            Image.fromarray(image).save(folder / name)
        names.append(name)
    table = table.assign(filename=names)
    atomic_write(folder / STIMULI_FILE, lambda tmp: table.to_csv(tmp, index=False))
    return table


def assembly(table: pd.DataFrame, responses: np.ndarray, region: str, stratification: Optional[str],
             subjects: Optional[Sequence[str]], neuroid_ids: Optional[Sequence[str]]) -> xr.DataArray:
    """assembly.nc's content, checked: ``responses [R, N, K]`` (repetitions x the N stimuli
    of ``table`` x neuroids; at least 2 repetitions, finite) as float32 ``[R * N, K]``, one
    row per presentation."""
    with np.errstate(over="ignore"):  # beyond float32: inf, refused below
        responses = np.asarray(responses, dtype=np.float32)
    if responses.ndim != 3:
        raise PackError(f"responses must be [repetitions, stimuli, neuroids], got shape {responses.shape}")
    reps, n, k = responses.shape
    if n != len(table):
        raise PackError(f"responses cover {n} stimuli but there are {len(table)} images")
    if reps < 2:
        raise PackError("responses need at least 2 repetitions (the ceiling is split-half over repetitions)")
    check_finite(responses, "responses", [("repetition", range(reps)), ("stimulus_id", table["stimulus_id"].tolist()),
                                          ("neuroid", range(k))])
    coords = {"stimulus_id": ("presentation", np.tile(table["stimulus_id"].to_numpy(str), reps)),
              "repetition": ("presentation", np.repeat(np.arange(reps), n)),
              "neuroid_id": ("neuroid", np.asarray(neuroid_ids if neuroid_ids is not None
                                                   else [f"n{i:04d}" for i in range(k)], dtype=str)),
              "region": ("neuroid", np.array([region] * k))}
    if stratification:
        if stratification not in table:
            raise PackError(f"stimulus_meta has no stratification column {stratification!r}")
        coords[stratification] = ("presentation", np.tile(table[stratification].astype(str).to_numpy(), reps))
    if subjects is not None:
        if len(subjects) != k:
            raise PackError(f"{len(subjects)} subjects given for {k} neuroids")
        coords["subject"] = ("neuroid", np.asarray(subjects, dtype=str))
    return xr.DataArray(responses.reshape(reps * n, k), dims=("presentation", "neuroid"), coords=coords,
                        name="responses")


def finish_pack(folder: Path, data: xr.DataArray, meta: dict) -> None:
    """Write assembly.nc (``assembly``'s ``data``), then pack.json (``pack_meta``'s ``meta``),
    the file that makes the folder a pack."""
    atomic_write(folder / ASSEMBLY_FILE, data.to_netcdf)
    atomic_write(folder / PACK_FILE, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1) + "\n"))


def write_pack(folder, images: ImagesLike, stimulus_meta: pd.DataFrame, responses: np.ndarray, *, region: str,
               name: Optional[str] = None, metrics: Sequence[str] = ("pls",), subjects: Optional[Sequence[str]] = None,
               stratification: Optional[str] = "object_name", visual_degrees: float = DEFAULT_VISUAL_DEGREES,
               time_bin: tuple[float, float] = DEFAULT_TIME_BIN, neuroid_ids: Optional[Sequence[str]] = None) -> Path:
    """Write a pack to ``folder`` and return it.

    images: ``[N, 3, H, W]`` tensor/array in [0, 1] (saved as PNG) or N image paths (copied);
    stimulus_meta: N rows with ``stimulus_id`` and the ``stratification`` column;
    responses: ``[R, N, K]`` (repetitions x stimuli x neuroids, finite); subjects: ``K``
    labels (needed by ``"rdm"``); name: a pack name (``tdsnn.names``), default the folder's
    name.
    """
    folder = Path(folder)
    meta = pack_meta(folder, name or folder.name, region, metrics, stratification, visual_degrees, time_bin)
    table, prepared = stimulus_table(images, stimulus_meta)
    data = assembly(table, responses, region, stratification, subjects, neuroid_ids)
    write_stimuli(folder, table, prepared)
    finish_pack(folder, data, meta)
    return folder
