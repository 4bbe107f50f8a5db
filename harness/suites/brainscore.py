"""Brain-Score suite: the public benchmarks TopoNets average per region (docs/method.md §6)
and local neural-data packs (``harness.neural_pack``), scored on the plugin's Brain-Score
model of the subject (``brainscore_plugin.commitment.brain_model``).

Metrics: each benchmark id (ceiled score; per-run keys); ``BRAINSCORE[region]`` = mean of
the region's scored benchmarks among those run (absent for a region none of whose
benchmarks was asked for); ``local:<pack>`` (``local:<pack>:<metric>`` for a pack's
further metrics) for each local pack, reported on its own and not averaged into the
region means. Raw scores and ceilings are in ``details["scores"]``.

Benchmarks load and download through ``harness.brainscore_env`` (offline: unavailable
within seconds, with a one-line reason). With ``options.strict`` an unavailable benchmark
raises ``BenchmarkUnavailable``. The model is built once per ``run``, and only if some
benchmark or pack can be scored. Marques2020's KS similarity bootstraps with numpy's
global generator: it is seeded (``SEED``) before each benchmark so that scores are
reproducible.
"""
from __future__ import annotations

import math
import time
from typing import Optional

import numpy as np
from tqdm import tqdm

from brainscore_plugin.commitment import brain_model
from harness.brainscore_env import load_benchmark, reason, s3_preflight, score_benchmark
from harness.neural_pack import PackError, load_pack, pack_digest
from tdsnn.regions import REGIONS

from . import Options, Subject, SuiteResult, Unavailable
from .benchmark_list import BENCHMARKS, check_benchmarks, region_of
from .keys import BRAINSCORE

SEED = 0


class BenchmarkUnavailable(Unavailable):
    """A benchmark could not be loaded or scored and ``options.strict`` was set."""


def settings(subject: Subject, options: Options) -> dict:
    """What the result depends on besides the model: benchmark ids and the packs' contents."""
    ids = list(BENCHMARKS) if options.benchmarks is None else list(options.benchmarks)
    return {"benchmarks": ids, "packs": {str(p): pack_digest(p) for p in options.neural_data}}


class _LastLookAt:
    """The Brain-Score model, with its last ``look_at`` in recording mode remembered.

    Benchmarks that show the same stimuli to the same region one after another (a pack's
    PLS and RDM benchmarks, the Marques2020 benchmarks of one stimulus set) then run the
    network once; Brain-Score's own activation cache does this only when result caching is
    on. The key is Brain-Score's: region, time bins, StimulusSet identifier, trials. Only
    the last response is kept (they can be large); callers get copies.
    """

    def __init__(self, model):
        self._model = model
        self._recording = None
        self._last = (None, None)
        self.hits = 0

    def start_recording(self, recording_target, time_bins):
        try:  # bins come as tuples or as 0-d object arrays holding one (timebins_from_assembly)
            bins = [np.asarray(b, dtype=object) for b in time_bins]
            bins = tuple(tuple(float(t) for t in (b.item() if b.ndim == 0 else b.tolist())) for b in bins)
            self._recording = (recording_target, bins)
        except (TypeError, ValueError):
            self._recording = None  # unusual bins: nothing is remembered
        return self._model.start_recording(recording_target, time_bins)

    def start_task(self, *args, **kwargs):
        self._recording = None
        return self._model.start_task(*args, **kwargs)

    def look_at(self, stimuli, number_of_trials=1, **kwargs):
        identifier = getattr(stimuli, "identifier", None)
        if self._recording is None or not identifier or kwargs:
            return self._model.look_at(stimuli, number_of_trials=number_of_trials, **kwargs)
        key = (*self._recording, identifier, number_of_trials)
        if self._last[0] == key:
            self.hits += 1
        else:
            self._last = (None, None)  # free the previous response before computing the next
            self._last = (key, self._model.look_at(stimuli, number_of_trials=number_of_trials))
        return self._last[1].copy()

    def __getattr__(self, name):
        return getattr(self._model, name)


def _place(model, device) -> None:
    """Move the commitment's network to ``device`` (PytorchWrapper picks CUDA by itself)."""
    activations = getattr(model, "activations_model", None)
    if device is None or activations is None or not hasattr(activations, "_model"):
        return
    activations._model = activations._model.to(device)
    activations._device = device


def _scalar(value) -> Optional[float]:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def run(subject: Subject, options: Options) -> SuiteResult:
    strict, progress = bool(getattr(options, "strict", False)), bool(getattr(options, "progress", False))
    ids = list(BENCHMARKS) if options.benchmarks is None else list(dict.fromkeys(options.benchmarks))
    check_benchmarks(ids)
    packs = [load_pack(folder) for folder in options.neural_data]  # bad packs fail here, before anything slow
    names = [p.name for p in packs]
    if len(set(names)) != len(names):
        raise PackError(f"two neural-data packs share the name {next(n for n in names if names.count(n) > 1)!r}")

    unavailable: dict[str, str] = {}
    regions = {i: region_of(i) for i in ids}
    jobs: dict = {}  # result key -> benchmark
    seconds: dict[str, float] = {}
    with s3_preflight() as consulted:
        for identifier in tqdm(ids, desc="loading benchmarks", leave=False, disable=not progress):
            start = time.perf_counter()
            try:
                jobs[identifier] = load_benchmark(identifier)
            except Exception as err:  # noqa: BLE001 - any failure to get the data makes it unavailable
                if strict:
                    raise BenchmarkUnavailable(f"{identifier}: {reason(err)}") from err
                unavailable[identifier] = reason(err)
            seconds[f"load {identifier}"] = time.perf_counter() - start
        local = {}
        for pack in packs:
            for metric, benchmark in pack.benchmarks.items():
                key = pack.key(metric)
                jobs[key], regions[key], local[key] = benchmark, pack.region, pack
        scores, metrics, model_identifier, reused = {}, {}, None, 0
        if jobs:
            model = _LastLookAt(brain_model_of(subject, options))
            model_identifier = model.identifier
            for key, benchmark in tqdm(jobs.items(), desc="Brain-Score", leave=False, disable=not progress):
                np.random.seed(SEED)
                start = time.perf_counter()
                try:
                    score = score_benchmark(benchmark, model)
                except Exception as err:  # noqa: BLE001 - e.g. a benchmark's assertion on this model's responses
                    if strict:
                        raise BenchmarkUnavailable(f"{key}: scoring failed: {reason(err)}") from err
                    unavailable[key] = f"scoring failed: {reason(err)}"
                    continue
                seconds[key] = time.perf_counter() - start
                scores[key] = {"identifier": benchmark.identifier, "ceiled": float(score),
                               "raw": _scalar(score.attrs.get("raw")), "ceiling": _scalar(score.attrs.get("ceiling")),
                               "error": _scalar(score.attrs.get("error")), "region": regions[key]}
                if key in local:
                    scores[key]["metric"] = next(m for m, b in local[key].benchmarks.items() if b is benchmark)
                if not math.isfinite(float(score)):
                    if strict:
                        raise BenchmarkUnavailable(f"{key}: the score is not finite ({float(score)})")
                    unavailable[key] = f"the score is not finite ({float(score)})"
                    continue
                metrics[key] = float(score)
            reused = model.hits

    averaged = {}
    for region in REGIONS:
        members = [i for i in ids if regions[i] == region]
        if not members:
            continue  # none of the region's benchmarks was asked for: not applicable
        averaged[region] = members
        values = [metrics[i] for i in members if i in metrics]
        if values:
            metrics[BRAINSCORE[region]] = sum(values) / len(values)
        else:
            unavailable[BRAINSCORE[region]] = (f"none of its {len(members)} benchmark(s) could be scored, e.g. "
                                               f"{members[0]}: {unavailable.get(members[0], 'no score')}")
    local_keys = list(local)
    packs_details = {p.name: {"folder": str(p.folder), "region": p.region, "digest": p.digest,
                              "keys": {m: p.key(m) for m in p.metrics},
                              "identifiers": {m: p.identifier(m) for m in p.metrics},
                              "stimuli": len(p.stimulus_set), "neuroids": int(p.averaged.sizes["neuroid"]),
                              "repetitions": int(len(np.unique(p.repetitions["repetition"].values)))}
                     for p in packs}
    return SuiteResult("brainscore", metrics=metrics, unavailable=unavailable, run_keys=(*ids, *local_keys),
                       details={"benchmarks": ids + local_keys, "regions": regions, "averaged": averaged,
                                "local": local_keys, "scores": scores, "seconds": seconds, "model": model_identifier,
                                "reused_responses": reused, "packs": packs_details,
                                "preflight": {host: why or "reachable" for host, why in consulted.items()}})


def brain_model_of(subject: Subject, options: Options):
    """The subject's Brain-Score model (rate-coded), on the subject's device."""
    model = brain_model(subject.name, weights=subject.weights, batch_size=getattr(options, "batch_size", 64))
    _place(model, getattr(subject, "device", None))
    return model
