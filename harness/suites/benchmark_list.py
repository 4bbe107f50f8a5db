"""The Brain-Score benchmarks of the Brain-Score suite: TopoNets' default list with the
region of each (docs/method.md §6), and every id the installed brainscore_vision registers."""
from __future__ import annotations

import functools
import re

from harness.brainscore_env import BENCHMARK_PLUGINS
from tdsnn.regions import REGIONS

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
#: A registration line of a benchmark plugin: ``benchmark_registry['<id>'] = ...``. Ids are
#: letters, digits, ``_ . -``; anything else (a placeholder in a docstring) is no benchmark.
_REGISTRATION = re.compile(r"""benchmark_registry\[['"]([A-Za-z0-9][A-Za-z0-9_.\-]*)['"]\]""")
_REGION = re.compile(rf"[._]({'|'.join(REGIONS)})[-._]")


@functools.lru_cache(maxsize=1)
def registered_benchmarks() -> tuple[str, ...]:
    """Every benchmark id registered in the installed brainscore_vision, found as its own
    plugin lookup finds them: by the registration lines of the benchmark plugins."""
    inits = BENCHMARK_PLUGINS.glob("*/__init__.py")
    return tuple(sorted({m for init in inits for m in _REGISTRATION.findall(init.read_text())}))


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
    match = _REGION.search(identifier)
    return match.group(1) if match else "other"
