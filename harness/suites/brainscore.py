"""Brain-Score: the public benchmarks TopoNets average per region (METHOD.md §6) and
local neural-data packs (``harness.neural_pack``), scored on the plugin's Brain-Score
model (``brainscore_plugin.brain_model``).

Registered benchmarks load through ``brainscore_vision.load_benchmark``, so they use the
real data wherever it is cached in ``$BRAINIO_HOME`` or can be fetched from S3. One that
cannot be had becomes an unavailable entry with a one-line reason (offline, loading fails
within about a second per benchmark). Region scores are the means of the region's
available registered benchmarks; local packs are reported on their own.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import time
from pathlib import Path

os.environ.setdefault("BS_INSTALL_DEPENDENCIES", "no")  # never pip-install plugin requirements

import brainscore_vision  # noqa: E402
from brainscore_core.benchmarks import score_benchmark  # noqa: E402
from brainscore_vision import load_benchmark  # noqa: E402
from tqdm import tqdm  # noqa: E402

from brainscore_plugin.commitment import brain_model  # noqa: E402
from harness.neural_pack import pack_benchmarks, read_pack  # noqa: E402

from . import Options, Subject  # noqa: E402

REGIONS = ("V1", "V2", "V4", "IT")
MARQUES_V1 = tuple(f"Marques2020_{p}" for p in (
    "Cavanaugh2002-grating_summation_field", "Cavanaugh2002-surround_diameter",
    "Cavanaugh2002-surround_suppression_index", "DeValois1982-peak_sf", "DeValois1982-pref_or",
    "Ringach2002-circular_variance", "Ringach2002-cv_bandwidth_ratio", "Ringach2002-max_dc",
    "Ringach2002-modulation_ratio", "Ringach2002-opr_cv_diff", "Ringach2002-or_bandwidth",
    "Ringach2002-or_selective", "Ringach2002-orth_pref_ratio", "Schiller1976-sf_bandwidth",
    "Schiller1976-sf_selective"))
#: TopoNets' benchmarks (their appendix, Table 2) -> region.
BENCHMARKS: dict[str, str] = {
    "FreemanZiemba2013public.V1-pls": "V1", "tong.Coggan2024_fMRI.V1-rdm": "V1", **dict.fromkeys(MARQUES_V1, "V1"),
    "FreemanZiemba2013public.V2-pls": "V2", "tong.Coggan2024_fMRI.V2-rdm": "V2",
    "MajajHong2015public.V4-pls": "V4", "tong.Coggan2024_fMRI.V4-rdm": "V4",
    "MajajHong2015public.IT-pls": "IT", "tong.Coggan2024_fMRI.IT-rdm": "IT",
}
_REGISTRATION = re.compile(r"""benchmark_registry\[['"]([^'"]+)['"]\]""")


def registered_benchmarks() -> list[str]:
    """Every benchmark id registered in the installed brainscore_vision, found the way its
    own plugin lookup finds them: by the registration lines of the benchmark plugins."""
    root = Path(brainscore_vision.__file__).parent / "benchmarks"
    return sorted({m for init in root.glob("*/__init__.py") for m in _REGISTRATION.findall(init.read_text())})


def check_benchmarks(ids: list[str]) -> None:
    """Raise ``KeyError`` naming the unknown ids and listing the registered ones."""
    known = registered_benchmarks()
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise KeyError(f"unknown benchmark(s) {', '.join(unknown)}; registered: {', '.join(known)}")


def region_of(identifier: str) -> str:
    """The region of a benchmark id: from the TopoNets list, else the id's ``.V1-`` style part."""
    if identifier in BENCHMARKS:
        return BENCHMARKS[identifier]
    match = re.search(r"[._](V1|V2|V4|IT)[-._]", identifier)
    return match.group(1) if match else "other"


def reason(err: BaseException) -> str:
    """A one-line account of why a benchmark could not be loaded or scored."""
    text = str(err)
    url = re.search(r'Could not connect to the endpoint URL: "([^"]+)"', text)
    if url:
        return f"S3 unreachable (offline?), data not in $BRAINIO_HOME: {url.group(1)}"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(err).__name__}: {first[:240]}"


def settings(subject: Subject, options: Options) -> dict:
    packs = {str(p): hashlib.sha256((Path(p) / "assembly.nc").read_bytes()).hexdigest()
             for p in options.neural_data if (Path(p) / "assembly.nc").is_file()}
    return {"benchmarks": options.benchmarks or list(BENCHMARKS), "packs": packs}


def run(subject: Subject, options: Options) -> dict:
    ids = options.benchmarks or list(BENCHMARKS)
    benchmarks, regions, unavailable = {}, {}, {}
    for identifier in tqdm(ids, desc="loading benchmarks", leave=False, disable=not options.progress):
        regions[identifier] = region_of(identifier)
        try:
            benchmarks[identifier] = load_benchmark(identifier)
        except Exception as err:  # noqa: BLE001 - any failure to get the data makes it unavailable
            unavailable[identifier] = reason(err)
    local = []
    for pack in options.neural_data:
        meta = read_pack(pack)[0]
        for identifier, benchmark in pack_benchmarks(pack).items():
            benchmarks[identifier], regions[identifier] = benchmark, meta["region"]
            local.append(identifier)

    metrics, scores, seconds = {}, {}, {}
    if benchmarks:
        model = brain_model(subject.name, weights=subject.weights, batch_size=options.batch_size)
        for identifier, benchmark in tqdm(benchmarks.items(), desc="Brain-Score", leave=False,
                                          disable=not options.progress):
            start = time.perf_counter()
            try:
                score = score_benchmark(benchmark, model)
            except Exception as err:  # noqa: BLE001 - e.g. a benchmark's assertion on this model's responses
                unavailable[identifier] = f"scoring failed: {reason(err)}"
                continue
            seconds[identifier] = time.perf_counter() - start
            metrics[identifier] = float(score)
            raw, ceiling = getattr(score, "raw", None), getattr(score, "ceiling", None)
            scores[identifier] = {"ceiled": float(score), "raw": _scalar(raw), "ceiling": _scalar(ceiling)}

    for region in REGIONS:
        members = [i for i in ids if regions[i] == region]
        values = [metrics[i] for i in members if i in metrics and math.isfinite(metrics[i])]
        if values:
            metrics[f"brainscore_{region}"] = sum(values) / len(values)
        elif members:
            unavailable[f"brainscore_{region}"] = (f"none of its {len(members)} benchmarks could be scored; e.g. "
                                                   f"{members[0]}: {unavailable.get(members[0], 'no score')}")
    return {"metrics": metrics, "unavailable": unavailable,
            "details": {"benchmarks": ids + local, "regions": regions, "local": local, "scores": scores,
                        "seconds": seconds, "averaged": {r: [i for i in ids if regions[i] == r] for r in REGIONS}}}


def _scalar(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
