"""Local neural-data packs: recordings of your own, scored on a model by Brain-Score's own
benchmark classes (``NeuralBenchmark`` with PLS and the internal-consistency ceiling, as
MajajHong2015public.IT-pls; ``RSABenchmark`` with the RDM metric and the RSA ceiling).

Format: a pack is a directory

    pack.json     {"name": "mypack",              letters, digits, "_", "." and "-"
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

``write_pack`` writes a pack, ``load_pack`` reads one (a ``PackError`` names the missing
file, column or coordinate) into a ``NeuralPack`` with its benchmarks, and
``make_demo_pack`` plants a known signal (neuroids = random linear readouts of a model
layer + noise) for tests and demonstrations.

Identifiers of the benchmarks (and of the StimulusSet) carry the sha256 of the pack's
files, so Brain-Score's caches (activations, ceilings: keyed by identifier) never mix two
versions of a pack. netCDF is written and read with xarray's default engine (netCDF4,
a dependency of brainscore-core).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

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
from brainscore_vision.model_helpers.activations.pytorch import disable_activation_caching  # noqa: E402

from brainscore_plugin.commitment import activations_model  # noqa: E402

from tdsnn.checkpoint import atomic_write  # noqa: E402
from tdsnn.data import DataError, synthetic_images  # noqa: E402

PACK_FILE, STIMULI_FILE, ASSEMBLY_FILE, IMAGES_DIR = "pack.json", "stimuli.csv", "assembly.nc", "images"
REGIONS = ("V1", "V2", "V4", "IT")
METRICS = ("pls", "rdm")
DEFAULT_TIME_BIN = (70, 170)
DEFAULT_VISUAL_DEGREES = 8
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class PackError(DataError):
    """A neural-data pack that does not follow the format (the message names what is wrong)."""


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


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------

ImagesLike = Union[torch.Tensor, np.ndarray, Sequence[Union[str, os.PathLike]]]


def _write_stimuli(folder: Path, images: ImagesLike, stimulus_meta: pd.DataFrame) -> pd.DataFrame:
    """Write the images (arrays ``[N, 3, H, W]`` in [0, 1] as PNG; paths are copied) and
    stimuli.csv; return the table."""
    table = pd.DataFrame(stimulus_meta).reset_index(drop=True).copy()
    if "stimulus_id" not in table:
        raise PackError("stimulus_meta needs a 'stimulus_id' column")
    table["stimulus_id"] = table["stimulus_id"].astype(str)
    if table["stimulus_id"].duplicated().any():
        raise PackError(f"stimulus_meta: duplicate stimulus_id {table['stimulus_id'][table['stimulus_id'].duplicated()].iloc[0]!r}")
    if len(images) != len(table):
        raise PackError(f"{len(images)} images but {len(table)} rows of stimulus_meta")
    (folder / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    names = []
    for i, image in enumerate(images):
        if isinstance(image, (str, os.PathLike)):
            source = Path(image)
            name = f"{IMAGES_DIR}/{i:05d}{source.suffix.lower() or '.png'}"
            if source.resolve() != (folder / name).resolve():
                shutil.copyfile(source, folder / name)
        else:
            pixels = torch.as_tensor(image).detach().cpu().float()
            if pixels.ndim != 3 or pixels.shape[0] not in (1, 3):
                raise PackError(f"image {i}: expected [3, H, W] (or [1, H, W]) values in [0, 1], got {tuple(pixels.shape)}")
            pixels = (pixels.expand(3, -1, -1).permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
            name = f"{IMAGES_DIR}/{i:05d}.png"
            Image.fromarray(pixels).save(folder / name)
        names.append(name)
    table["filename"] = names
    atomic_write(folder / STIMULI_FILE, lambda tmp: table.to_csv(tmp, index=False))
    return table


def _write_assembly(folder: Path, table: pd.DataFrame, responses: np.ndarray, region: str,
                    stratification: Optional[str], subjects: Optional[Sequence[str]],
                    neuroid_ids: Optional[Sequence[str]]) -> None:
    responses = np.asarray(responses, dtype=np.float32)
    if responses.ndim != 3:
        raise PackError(f"responses must be [repetitions, stimuli, neuroids], got shape {responses.shape}")
    reps, n, k = responses.shape
    if n != len(table):
        raise PackError(f"responses cover {n} stimuli but there are {len(table)} images")
    if reps < 2:
        raise PackError("responses need at least 2 repetitions (the ceiling is split-half over repetitions)")
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
    data = xr.DataArray(responses.reshape(reps * n, k), dims=("presentation", "neuroid"), coords=coords,
                        name="responses")
    atomic_write(folder / ASSEMBLY_FILE, lambda tmp: data.to_netcdf(tmp))


def _write_meta(folder: Path, name: str, region: str, metrics: Sequence[str], stratification: Optional[str],
                visual_degrees: float, time_bin: tuple[float, float]) -> None:
    meta = {"name": name, "region": region, "visual_degrees": visual_degrees, "metric": list(metrics),
            "stratification": stratification, "time_bin": list(time_bin)}
    _check_meta(meta, folder)
    atomic_write(folder / PACK_FILE, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1) + "\n"))


def write_pack(folder, images: ImagesLike, stimulus_meta: pd.DataFrame, responses: np.ndarray, *, region: str,
               name: Optional[str] = None, metrics: Sequence[str] = ("pls",), subjects: Optional[Sequence[str]] = None,
               stratification: Optional[str] = "object_name", visual_degrees: float = DEFAULT_VISUAL_DEGREES,
               time_bin: tuple[float, float] = DEFAULT_TIME_BIN, neuroid_ids: Optional[Sequence[str]] = None) -> Path:
    """Write a pack to ``folder`` and return it.

    images: ``[N, 3, H, W]`` tensor/array in [0, 1] (saved as PNG) or N image paths (copied);
    stimulus_meta: N rows with ``stimulus_id`` and the ``stratification`` column;
    responses: ``[R, N, K]`` (repetitions x stimuli x neuroids); subjects: ``K`` labels
    (needed by ``"rdm"``); name: default the folder's name.
    """
    folder = Path(folder)
    name = name or folder.name
    _check_meta({"name": name, "region": region, "metric": list(metrics), "stratification": stratification,
                 "visual_degrees": visual_degrees, "time_bin": list(time_bin)}, folder)
    table = _write_stimuli(folder, images, stimulus_meta)
    _write_assembly(folder, table, responses, region, stratification, subjects, neuroid_ids)
    _write_meta(folder, name, region, metrics, stratification, visual_degrees, time_bin)
    return folder


def make_demo_pack(folder, model: Union[str, Callable[[torch.Tensor], np.ndarray]], *, shuffled: bool = False,
                   seed: int = 0, region: str = "IT", name: Optional[str] = None, weights: Optional[str] = None,
                   n_images: int = 48, classes: int = 4, image_size: int = 32, n_neuroids: int = 20,
                   repetitions: int = 4, noise: float = 0.5, subjects: int = 2, components: int = 10,
                   metrics: Sequence[str] = ("pls", "rdm")) -> Path:
    """A pack with a planted signal: ``n_images`` noisy gratings (``tdsnn.data.synthetic_images``;
    ``object_name`` = orientation class), ``n_neuroids`` neuroids = standardised random
    linear readouts of the model's responses + Gaussian noise (``noise`` per repetition,
    in units of the signal's standard deviation). The readouts mix the responses' leading
    ``components`` principal components (each scaled to unit variance), as neurons that a
    few stimuli suffice to predict; a readout of all units of a sparse spiking layer
    would spread the signal over more dimensions than there are stimuli.

    model: a registered model name (responses = its Brain-Score rates of the layer mapped to
    ``region``, exactly as the benchmarks will see them), or a callable ``images [N, 3, S, S]
    in [0, 1] -> features [N, F]``. shuffled: the control: each stimulus gets another
    stimulus's responses (stimulus ids permuted), so no model should predict them.
    """
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    images, labels = synthetic_images(n_images, image_size, classes=classes, seed=seed)
    meta = pd.DataFrame({"stimulus_id": [f"s{i:04d}" for i in range(n_images)],
                         "object_name": [f"class{int(c)}" for c in labels]})
    table = _write_stimuli(folder, images, meta)
    if isinstance(model, str):
        features = _model_features(model, weights, region, _stimulus_set(folder, table, f"demo-{uuid.uuid4().hex}"))
    else:
        features = np.asarray(model(images), dtype=np.float64).reshape(n_images, -1)
    centred = features - features.mean(0)
    _, singular, components_ = np.linalg.svd(centred, full_matrices=False)
    k = int(min(components, np.sum(singular > singular[0] * 1e-6)))
    if k == 0:
        raise PackError("the model's responses do not vary over the demo images (silent layer?)")
    scores = centred @ components_[:k].T / singular[:k]  # leading principal components, unit variance
    signal = scores @ rng.standard_normal((k, n_neuroids))
    spread = signal.std(0)
    if not np.all(spread > 0):
        raise PackError("the model's responses do not vary over the demo images (silent layer?)")
    signal = (signal - signal.mean(0)) / spread
    if shuffled:
        signal = signal[rng.permutation(n_images)]
    responses = signal[None] + noise * rng.standard_normal((repetitions, *signal.shape))
    labels_ = [f"subject{j}" for j in range(subjects)]
    per_neuroid = [labels_[j * subjects // n_neuroids] for j in range(n_neuroids)] if subjects else None
    _write_assembly(folder, table, responses, region, "object_name", per_neuroid, None)
    _write_meta(folder, name or folder.name, region, metrics if subjects >= 2 else [m for m in metrics if m != "rdm"],
                "object_name", DEFAULT_VISUAL_DEGREES, DEFAULT_TIME_BIN)
    return folder


def _model_features(name: str, weights: Optional[str], region: str, stimulus_set: StimulusSet) -> np.ndarray:
    """Rates ``[N, F]`` of registered model ``name``'s ``region`` layer, as Brain-Score extracts them."""
    entry, wrapper = activations_model(name, weights, batch_size=min(64, len(stimulus_set)))  # no padded batch
    layer = entry.region_layer_map[region]
    return np.asarray(disable_activation_caching(wrapper)(stimulus_set, layers=[layer]).values, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------

def _check_meta(meta: dict, folder: Path) -> None:
    where = f"{folder}/{PACK_FILE}"
    missing = [key for key in ("name", "region") if key not in meta]
    if missing:
        raise PackError(f"{where}: missing {', '.join(missing)}")
    if not isinstance(meta["name"], str) or not _NAME.match(meta["name"]):
        raise PackError(f"{where}: name {meta['name']!r} must be letters, digits, '_', '.' or '-'")
    if meta["region"] not in REGIONS:
        raise PackError(f"{where}: region {meta['region']!r} is not one of {', '.join(REGIONS)}")
    metrics = _metrics(meta)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise PackError(f"{where}: metric {meta.get('metric')!r} must be one or more of {', '.join(METRICS)}")
    degrees = meta.get("visual_degrees", DEFAULT_VISUAL_DEGREES)
    if not isinstance(degrees, (int, float)) or degrees <= 0:
        raise PackError(f"{where}: visual_degrees must be a positive number, got {degrees!r}")
    time_bin = meta.get("time_bin", DEFAULT_TIME_BIN)
    if (not isinstance(time_bin, (list, tuple)) or len(time_bin) != 2
            or not all(isinstance(t, (int, float)) for t in time_bin) or time_bin[0] >= time_bin[1]):
        raise PackError(f"{where}: time_bin must be [start_ms, end_ms], got {time_bin!r}")
    strat = meta.get("stratification")
    if strat is not None and not isinstance(strat, str):
        raise PackError(f"{where}: stratification must be a column name or null, got {strat!r}")


def _metrics(meta: dict) -> tuple[str, ...]:
    metric = meta.get("metric", "pls")
    return tuple([metric] if isinstance(metric, str) else metric)


def pack_digest(folder) -> str:
    """sha256 of pack.json, stimuli.csv, assembly.nc and the images stimuli.csv names
    (missing files hash as absent, so this never fails)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    files = [PACK_FILE, STIMULI_FILE, ASSEMBLY_FILE]
    try:
        files += sorted(pd.read_csv(folder / STIMULI_FILE, dtype=str)["filename"].dropna().tolist())
    except (OSError, KeyError, ValueError, pd.errors.ParserError):
        pass
    for name in files:
        path = folder / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<absent>")
    return digest.hexdigest()


def _stimulus_set(folder: Path, table: pd.DataFrame, identifier: str) -> StimulusSet:
    stimulus_set = StimulusSet(table.drop(columns="filename").reset_index(drop=True))
    stimulus_set.stimulus_paths = {sid: str((folder / f).resolve()) for sid, f in zip(table["stimulus_id"], table["filename"])}
    stimulus_set.identifier = identifier
    return stimulus_set


def read_pack(folder) -> NeuralPack:
    """A pack's metadata, StimulusSet and assemblies (no benchmarks); ``PackError`` names
    the missing or malformed file, column or coordinate."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PackError(f"neural-data pack {folder}: not a directory")
    for file in (PACK_FILE, STIMULI_FILE, ASSEMBLY_FILE):
        if not (folder / file).is_file():
            raise PackError(f"neural-data pack {folder}: missing {file} (format: see harness/neural_pack.py)")
    try:
        meta = json.loads((folder / PACK_FILE).read_text())
    except json.JSONDecodeError as err:
        raise PackError(f"{folder}/{PACK_FILE}: not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise PackError(f"{folder}/{PACK_FILE}: expected a JSON object")
    _check_meta(meta, folder)
    region, strat = meta["region"], meta.get("stratification")

    try:
        table = pd.read_csv(folder / STIMULI_FILE, dtype={"stimulus_id": str, "filename": str,
                                                         **({strat: str} if strat else {})})
    except (ValueError, pd.errors.ParserError) as err:
        raise PackError(f"{folder}/{STIMULI_FILE}: unreadable ({err})") from err
    for column in ("stimulus_id", "filename", *([strat] if strat else [])):
        if column not in table:
            raise PackError(f"{folder}/{STIMULI_FILE}: missing column {column!r}")
    if table["stimulus_id"].isna().any() or table["filename"].isna().any():
        raise PackError(f"{folder}/{STIMULI_FILE}: empty stimulus_id or filename")
    if table["stimulus_id"].duplicated().any():
        raise PackError(f"{folder}/{STIMULI_FILE}: duplicate stimulus_id "
                        f"{table['stimulus_id'][table['stimulus_id'].duplicated()].iloc[0]!r}")
    absent = [f for f in table["filename"] if not (folder / f).is_file()]
    if absent:
        raise PackError(f"{folder}: {len(absent)} image file(s) named in {STIMULI_FILE} are missing, e.g. {absent[0]}")

    where = f"{folder}/{ASSEMBLY_FILE}"
    try:
        with xr.open_dataset(folder / ASSEMBLY_FILE) as opened:
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
    if "rdm" in _metrics(meta):
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
    if "rdm" in _metrics(meta) and len(np.unique(data["subject"].values)) < 2:
        raise PackError(f"{where}: the rdm metric needs at least 2 subjects (its ceiling compares subjects)")
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

    digest = pack_digest(folder)
    stimulus_set = _stimulus_set(folder, table, f"tdsnn.pack.{meta['name']}-{digest[:12]}")
    start, end = meta.get("time_bin", DEFAULT_TIME_BIN)
    coords.update(time_bin_start=("time_bin", [start]), time_bin_end=("time_bin", [end]))
    repetitions = NeuroidAssembly(data.values.astype(np.float64)[:, :, None], coords=coords,
                                  dims=["presentation", "neuroid", "time_bin"]).squeeze("time_bin")
    repetitions.attrs["stimulus_set"] = stimulus_set
    repetitions.attrs["stimulus_set_identifier"] = stimulus_set.identifier
    averaged = type(repetitions)(average_repetition(repetitions))
    return NeuralPack(folder=folder, name=meta["name"], region=region,
                      visual_degrees=float(meta.get("visual_degrees", DEFAULT_VISUAL_DEGREES)),
                      metrics=_metrics(meta), stratification=strat, time_bin=(start, end), digest=digest,
                      stimulus_set=stimulus_set, repetitions=repetitions, averaged=averaged)


def crossvalidation_kwargs(pack: NeuralPack) -> dict:
    """PLS cross-validation options: Brain-Score's defaults (10 stratified 90/10 splits),
    with the test share raised on small sets so that every stratum has a test stimulus
    (sklearn's StratifiedShuffleSplit needs n_test >= n_strata)."""
    cv = {"stratification_coord": pack.stratification}
    n = len(pack.stimulus_set)
    strata = pack.stimulus_set[pack.stratification].nunique() if pack.stratification else 1
    if round(0.1 * n) < strata:
        if strata >= n:
            raise PackError(f"{pack.folder}: {n} stimuli cannot be split over {strata} strata of "
                            f"{pack.stratification!r}")
        cv["train_size"] = 1 - strata / n
    return cv


def load_pack(folder) -> NeuralPack:
    """``read_pack`` plus the benchmarks of the pack's metrics: ``"pls"`` is a
    ``NeuralBenchmark`` (PLS regression, ceiling ``internal_consistency`` over repetitions,
    ceiled = r² / ceiling), ``"rdm"`` an ``RSABenchmark`` (ceiled = r / RSA ceiling)."""
    pack = read_pack(folder)
    for metric in pack.metrics:
        identifier = pack.identifier(metric)
        if metric == "pls":
            ceiler, repetitions = load_ceiling("internal_consistency"), pack.repetitions
            pack.benchmarks[metric] = NeuralBenchmark(
                identifier=identifier, version=1, assembly=pack.averaged, visual_degrees=pack.visual_degrees,
                number_of_trials=1, similarity_metric=load_metric("pls", crossvalidation_kwargs=crossvalidation_kwargs(pack)),
                ceiling_func=lambda: ceiler(repetitions), parent=pack.region, bibtex=None)
        else:
            pack.benchmarks[metric] = RSABenchmark(
                identifier=identifier, version=1, assembly=pack.averaged, region=pack.region,
                visual_degrees=pack.visual_degrees, number_of_trials=1, bibtex=None)
    return pack
