"""Brain-Score suite: the public benchmarks TopoNets average per region (METHOD.md §6) and
local neural-data packs (``harness.neural_pack``), scored on the plugin's Brain-Score
model of the subject (``brainscore_plugin.commitment.brain_model``).

Result keys (``run``): each benchmark id (ceiled score); ``brainscore_<region>`` = mean of
the region's scored benchmarks among those run (absent for a region none of whose
benchmarks was asked for); ``local:<pack>`` (``local:<pack>:<metric>`` for a pack's
further metrics) for each local pack, reported on its own and not averaged into the
region means. Raw scores and ceilings are in ``details["scores"]``.

Registered benchmarks load through ``brainscore_vision.load_benchmark``, so they use the
real data wherever it is cached in ``$BRAINIO_HOME`` and download it otherwise. Offline
they become unavailable entries with a one-line reason, within seconds:

* Every S3 download goes through ``BotoFetcher.download_boto``, which is only called for
  files missing from ``$BRAINIO_HOME``. While the suite runs, that method is wrapped by a
  preflight: an HTTPS HEAD request to the bucket's host, given ``PREFLIGHT_TIMEOUT``
  (3 s, DNS included), done once per host and remembered for ``PREFLIGHT_TTL`` seconds.
  If the host does not answer, the download fails at once with ``S3Unreachable``. So
  cached data never waits on the network, and a network that drops packets (where
  boto3 would retry its 60 s connect timeout several times) costs at most ~3 s per run.
* Measured on a machine without network (DNS fails): all 23 default benchmarks are
  reported unavailable in about 2 s in all (0.1-1.3 s each without the preflight).

With ``options.strict`` an unavailable benchmark raises ``BenchmarkUnavailable``. The
model is built once per ``run``, and only if some benchmark or pack can be scored.
Marques2020's KS similarity bootstraps with numpy's global generator: it is seeded
(``SEED``) before each benchmark so that scores are reproducible.
"""
from __future__ import annotations

import math
import os
import re
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

os.environ.setdefault("BS_INSTALL_DEPENDENCIES", "no")  # never pip-install plugin requirements

import numpy as np  # noqa: E402
import brainscore_vision  # noqa: E402
from brainscore_core.benchmarks import score_benchmark  # noqa: E402
from brainscore_core.supported_data_standards.brainio import fetch as brainio_fetch  # noqa: E402
from brainscore_vision import load_benchmark  # noqa: E402
from tqdm import tqdm  # noqa: E402

from brainscore_plugin.commitment import brain_model  # noqa: E402
from harness.neural_pack import PackError, load_pack, pack_digest  # noqa: E402

from . import Options, Subject, Unavailable  # noqa: E402

REGIONS = ("V1", "V2", "V4", "IT")
MARQUES_V1 = tuple(f"Marques2020_{p}" for p in (
    "Cavanaugh2002-grating_summation_field", "Cavanaugh2002-surround_diameter",
    "Cavanaugh2002-surround_suppression_index", "DeValois1982-peak_sf", "DeValois1982-pref_or",
    "Ringach2002-circular_variance", "Ringach2002-cv_bandwidth_ratio", "Ringach2002-max_dc",
    "Ringach2002-modulation_ratio", "Ringach2002-opr_cv_diff", "Ringach2002-or_bandwidth",
    "Ringach2002-or_selective", "Ringach2002-orth_pref_ratio", "Schiller1976-sf_bandwidth",
    "Schiller1976-sf_selective"))
#: TopoNets' benchmarks (their appendix, Table 2) -> region: the default list.
BENCHMARKS: dict[str, str] = {
    "FreemanZiemba2013public.V1-pls": "V1", "tong.Coggan2024_fMRI.V1-rdm": "V1", **dict.fromkeys(MARQUES_V1, "V1"),
    "FreemanZiemba2013public.V2-pls": "V2", "tong.Coggan2024_fMRI.V2-rdm": "V2",
    "MajajHong2015public.V4-pls": "V4", "tong.Coggan2024_fMRI.V4-rdm": "V4",
    "MajajHong2015public.IT-pls": "IT", "tong.Coggan2024_fMRI.IT-rdm": "IT",
}
PREFLIGHT_TIMEOUT = 3.0  # s, for the whole HEAD request including DNS
PREFLIGHT_TTL = 300.0  # s a preflight answer is reused
SEED = 0
_REGISTRATION = re.compile(r"""benchmark_registry\[['"]([^'"]+)['"]\]""")


class BenchmarkUnavailable(Unavailable):
    """A benchmark could not be loaded or scored and ``options.strict`` was set."""


class S3Unreachable(ConnectionError):
    """The S3 host of a missing data file does not answer (raised before boto3 tries)."""


# ---------------------------------------------------------------------------------------------
# registered benchmarks
# ---------------------------------------------------------------------------------------------

def registered_benchmarks() -> list[str]:
    """Every benchmark id registered in the installed brainscore_vision, found as its own
    plugin lookup finds them: by the registration lines of the benchmark plugins."""
    root = Path(brainscore_vision.__file__).parent / "benchmarks"
    return sorted({m for init in root.glob("*/__init__.py") for m in _REGISTRATION.findall(init.read_text())})


def check_benchmarks(ids: list[str]) -> None:
    """Raise ``KeyError`` naming the unknown ids (ids are case-sensitive) and listing the registered ones."""
    known = set(registered_benchmarks())
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise KeyError(f"unknown benchmark(s) {', '.join(unknown)}; registered: {', '.join(sorted(known))}")


def region_of(identifier: str) -> str:
    """The region of a benchmark id: from the TopoNets list, else the id's ``.V1-`` style part."""
    if identifier in BENCHMARKS:
        return BENCHMARKS[identifier]
    match = re.search(r"[._](V1|V2|V4|IT)[-._]", identifier)
    return match.group(1) if match else "other"


# ---------------------------------------------------------------------------------------------
# S3 preflight
# ---------------------------------------------------------------------------------------------

_preflights: dict[tuple[str, int], tuple[float, Optional[str]]] = {}
_preflight_lock = threading.Lock()


def probe_endpoint(host: str, port: int = 443, timeout: Optional[float] = None) -> Optional[str]:
    """``None`` when ``https://host:port/`` answers a HEAD request (any HTTP status) within
    ``timeout`` seconds (default ``PREFLIGHT_TIMEOUT``), else a short reason. Runs in a
    daemon thread so that a hanging DNS lookup cannot hold the caller either. Honours the
    usual proxy variables."""
    timeout = PREFLIGHT_TIMEOUT if timeout is None else timeout
    url = f"https://{host}/" if port == 443 else f"https://{host}:{port}/"
    outcome: dict[str, Optional[str]] = {}

    def attempt():
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            outcome["why"] = None
        except urllib.error.HTTPError:
            outcome["why"] = None  # the server answered (S3 says 403 to an anonymous HEAD of a bucket)
        except Exception as err:  # noqa: BLE001 - any failure to get an answer
            cause = getattr(err, "reason", err)
            outcome["why"] = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__

    worker = threading.Thread(target=attempt, name=f"preflight-{host}", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return outcome.get("why", f"no answer within {timeout:g} s")


def preflight(host: str, port: int = 443) -> Optional[str]:
    """``probe_endpoint`` remembered per host for ``PREFLIGHT_TTL`` seconds."""
    with _preflight_lock:
        when, why = _preflights.get((host, port), (-math.inf, None))
        if time.monotonic() - when > PREFLIGHT_TTL:
            why = probe_endpoint(host, port)
            _preflights[(host, port)] = (time.monotonic(), why)
        return why


@contextmanager
def s3_preflight():
    """While active, a download of a file missing from ``$BRAINIO_HOME`` first checks that
    its S3 host answers (``preflight``) and raises ``S3Unreachable`` at once if not.
    Yields ``{host: reason or None}`` of the hosts consulted."""
    fetcher = brainio_fetch.BotoFetcher
    original = fetcher.download_boto
    consulted: dict[str, Optional[str]] = {}

    def download_boto(self):
        parsed = urlparse(self.location)
        host = parsed.hostname or "?"
        why = consulted[host] = preflight(host, parsed.port or 443)
        if why is not None:
            raise S3Unreachable(f"S3 unreachable ({why}): {host}")
        return original(self)

    fetcher.download_boto = download_boto
    try:
        yield consulted
    finally:
        fetcher.download_boto = original


def reason(err: BaseException) -> str:
    """A one-line account of why a benchmark could not be loaded or scored."""
    seen, stack = set(), [err]
    while stack:  # S3Unreachable anywhere in the chain (Brain-Score wraps some errors in lists)
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, S3Unreachable):
            return str(e)
        stack += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
        stack += [a for arg in getattr(e, "args", ()) if isinstance(arg, (list, tuple))
                  for a in arg if isinstance(a, BaseException)]
        stack += [c for c in (e.__cause__, e.__context__) if c is not None]
    text = str(err)
    url = re.search(r'Could not connect to the endpoint URL: "([^"]+)"', text)
    if url:
        return f"S3 unreachable (EndpointConnectionError): {urlparse(url.group(1)).hostname}"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(err).__name__}: {first[:240]}" if first else type(err).__name__


# ---------------------------------------------------------------------------------------------
# the suite
# ---------------------------------------------------------------------------------------------

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


def run(subject: Subject, options: Options) -> dict:
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
            metrics[f"brainscore_{region}"] = sum(values) / len(values)
        else:
            unavailable[f"brainscore_{region}"] = (f"none of its {len(members)} benchmark(s) could be scored, e.g. "
                                                   f"{members[0]}: {unavailable.get(members[0], 'no score')}")
    local_keys = list(local)
    return {"metrics": metrics, "unavailable": unavailable,
            "details": {"benchmarks": ids + local_keys, "regions": regions, "averaged": averaged,
                        "local": local_keys, "scores": scores, "seconds": seconds, "model": model_identifier,
                        "reused_responses": reused,
                        "packs": {p.name: {"folder": str(p.folder), "region": p.region, "digest": p.digest,
                                           "keys": {m: p.key(m) for m in p.metrics},
                                           "identifiers": {m: p.identifier(m) for m in p.metrics},
                                           "stimuli": len(p.stimulus_set),
                                           "neuroids": int(p.averaged.sizes["neuroid"]),
                                           "repetitions": int(len(np.unique(p.repetitions["repetition"].values)))}
                                  for p in packs},
                        "preflight": {host: why or "reachable" for host, why in consulted.items()}}}


def brain_model_of(subject: Subject, options: Options):
    """The subject's Brain-Score model (rate-coded), on the subject's device."""
    model = brain_model(subject.name, weights=subject.weights, batch_size=getattr(options, "batch_size", 64))
    _place(model, getattr(subject, "device", None))
    return model
