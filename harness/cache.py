"""Cached suite results: the key of everything a result depends on, and the file holding it.

A result depends on
- the code: every ``*.py`` file of the project's packages (``PROJECT_PACKAGES``);
- the installed versions of the libraries that compute it (``versions()``);
- the model: its resolved registry entry (config, region map, temporal bins,
  preprocessing, data tag), the config of the network actually built, and the sha256 of
  its weights;
- the suite and its settings, which name the evaluation data and the version of its files
  (``harness.suites.common.data_settings``) and, for Brain-Score, the packs' digests.

The sha256 of that key names the cache file, so a change to any of them computes the
result again. A file that cannot be read, is not a suite result of the right suite, or
holds unavailable parts (their data may have arrived) is computed again too.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Optional

import tdsnn
from harness.suites import Subject, SuiteResult
from tdsnn.checkpoint import atomic_write

#: The project's packages: their code is part of every cache key.
PROJECT_PACKAGES = ("tdsnn", "harness", "brainscore_plugin")
#: Libraries whose versions are recorded with the results and are part of every cache key.
VERSIONED_PACKAGES = ("torch", "torchvision", "spikingjelly", "brainscore-vision", "topoloss", "numpy", "xarray",
                      "pandas")


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Python, tdsnn and ``VERSIONED_PACKAGES`` versions ("not installed" for missing ones)."""
    found = {"python": platform.python_version(), "tdsnn": tdsnn.__version__}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """sha256 of the sources of ``PROJECT_PACKAGES``, so that cached results never outlive
    the code that computed them."""
    digest = hashlib.sha256()
    for package in PROJECT_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"the project package {package} is not importable")
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(root.rglob("*.py")):
            digest.update(path.relative_to(root.parent).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def model_key(subject: Subject) -> dict:
    """What identifies the model under test: its resolved registry entry (without the
    weights' location, which ``sha256`` stands for), the built network's config and the
    weights' sha256."""
    entry = {k: v for k, v in dataclasses.asdict(subject.entry).items() if k != "weights"}
    return {"entry": entry, "config": subject.model.config.to_dict(), "weights": subject.sha256}


def cache_key(subject: Subject, suite: str, settings: dict) -> str:
    """The sha256 of everything the result of ``suite`` on ``subject`` depends on."""
    key = json.dumps({"model": model_key(subject), "suite": suite, "settings": settings, "code": code_version(),
                      "versions": versions()}, sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()


def cache_file(out: Path, subject: Subject, suite: str, settings: dict) -> Path:
    """``out/cache/<model>-<sha256[:8]>/<suite>-<key[:16]>.json``."""
    digest = cache_key(subject, suite, settings)[:16]
    return out / "cache" / f"{subject.name}-{subject.sha256[:8]}" / f"{suite}-{digest}.json"


def load(path: Path, suite: str) -> Optional[SuiteResult]:
    """The complete result of ``suite`` cached at ``path``, else None (to be computed)."""
    try:
        result = SuiteResult.from_json(json.loads(path.read_text()))
    except (OSError, ValueError):  # missing, unreadable, not JSON (a full disk) or not a result (ResultShapeError)
        return None
    if result.suite != suite or result.unavailable:
        return None
    result.cached = True
    return result


def store(path: Path, result: SuiteResult) -> None:
    """Write ``result`` (arrays included) to ``path`` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(result.to_json())))
