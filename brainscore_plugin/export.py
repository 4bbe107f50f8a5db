"""Write a registered tdsnn variant as an upstream brain-score/vision model plugin folder.

    python -m brainscore_plugin export tsresnet18.fmnist DIR --weights-hub OWNER/REPO[@REV]

DIR/<plugin name>/ then holds what ``brainscore_vision/models/<plugin>/`` needs:
``__init__.py`` (one literal ``model_registry['<id>'] = lambda: ...`` line per id),
``model.py`` (the same for every export), ``plugin.json`` (what this export is: weights
source and sha256, region -> layer map, preprocessing, ms per timestep; see
``exported.py``), ``requirements.txt`` (tdsnn pinned to a commit), ``metadata.yml``
(schema 2.0) and ``test.py``. Two ids are registered: the rate-coded model and its
per-timestep ``-temporal`` twin. The weights stay outside the folder, to be uploaded to
their source, unless ``--bundle-weights`` copies them in (local use only).

A re-export replaces the folder whole (no stale files); a non-empty folder that is not a
previous export is refused unless ``force``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tdsnn
from tdsnn import registry
from tdsnn.checkpoint import atomic_write, save_model, sha256_file
from tdsnn.names import check_model_name
from tdsnn.registry import load_variant

from .commitment import CommitmentSpec, model_identifier
from .exported import PLUGIN_FILE, ExportedPlugin
from .metadata import metadata_text
from .requirements import commit_url, pinned_requirement, requirement_problems
from .weights import BundledWeights, HubWeights, UrlWeights, WeightsSource

MODEL_PY = '''"""Brain-Score model plugin exported by tdsnn (``python -m brainscore_plugin export``).

``plugin.json`` beside this file names the weights (source and sha256) and the commitment
(region -> layer map, preprocessing, ms per timestep); the network is rebuilt from the
weights file's own header (tdsnn's ``brainscore_plugin/exported.py``).
"""
from pathlib import Path

from brainscore_plugin.exported import BIBTEX, ExportedPlugin

FOLDER = Path(__file__).parent
PLUGIN = ExportedPlugin.read(FOLDER)


def commitment(identifier: str):
    """The Brain-Score model ``identifier``, weights fetched and sha256-checked."""
    return PLUGIN.commitment(FOLDER, identifier)


def get_model(identifier: str):
    """The activations model (Brain-Score's PytorchWrapper contract)."""
    return commitment(identifier).activations_model


def get_layers(identifier: str) -> list:
    return commitment(identifier).layers


def get_bibtex(identifier: str) -> str:
    return BIBTEX
'''

INIT_PY = '''from brainscore_vision import model_registry

from .model import commitment

{registrations}
'''

TEST_PY = '''import pytest

import brainscore_vision


@pytest.mark.travis_slow
@pytest.mark.parametrize("identifier", {ids!r})
def test_has_identifier(identifier):
    model = brainscore_vision.load_model(identifier)
    assert model.identifier == identifier
'''


class ExportError(ValueError):
    """An export refused before anything was written."""


@dataclass(frozen=True)
class Export:
    """A written plugin ``folder``; ``weights_file`` is the local checkpoint its source must serve."""
    folder: Path
    plugin: ExportedPlugin
    weights_file: Path
    requirements: list[str]

    def instructions(self) -> str:
        """What to do next: publish the weights, check the folder."""
        return (f"plugin written to {self.folder}\n"
                f"weights: {self.weights_file}\n  sha256 {self.plugin.sha256}\n"
                f"{self.plugin.weights.publish_hint(self.weights_file)}\n"
                f"then check it: python -m brainscore_plugin check {self.folder}")


def plugin_dirname(identifier: str) -> str:
    """A Python-package-safe folder name for an identifier."""
    return re.sub(r"[^0-9a-zA-Z_]", "_", identifier).lower()


def registrations(identifiers: list[str]) -> str:
    """The ``__init__.py`` registration lines: identifiers only as ``repr()`` literals."""
    return "\n".join(f"model_registry[{i!r}] = lambda: commitment({i!r})" for i in identifiers)


def _weights_source(filename: str, hub: Optional[str], url: Optional[str]) -> WeightsSource:
    if hub is not None and url is not None:
        raise ExportError("give one weights source: --weights-hub, --weights-url or --bundle-weights")
    if hub is not None:
        return HubWeights.parse(hub, filename)
    if url is not None:
        return UrlWeights(url)
    return BundledWeights(filename)


def _is_previous_export(folder: Path) -> bool:
    try:
        return json.loads((folder / PLUGIN_FILE).read_text()).get("tdsnn_plugin") is not None
    except (OSError, ValueError, AttributeError):
        return False


def _check_target(folder: Path, force: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not _is_previous_export(folder) and not force:
        raise ExportError(f"{folder} is not empty and is not a previous export (no {PLUGIN_FILE}); "
                          "choose another DIR or pass --force to replace it")


def _replace_folder(staging: Path, folder: Path) -> None:
    """Move ``staging`` to ``folder``; an existing ``folder`` is set aside first and removed after."""
    old = None
    if folder.exists():
        old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old."))
        os.replace(folder, old / folder.name)
    try:
        os.replace(staging, folder)
    except OSError:
        if old is not None:
            os.replace(old / folder.name, folder)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def export_plugin(name: str, directory: str | Path, weights: Optional[str] = None, hub: Optional[str] = None,
                  url: Optional[str] = None, requirements: Optional[list[str]] = None, allow_dirty: bool = False,
                  force: bool = False) -> Export:
    """Write the plugin of registered variant ``name`` under ``directory``.

    Args:
        weights: a tdsnn checkpoint to export instead of the registered weights.
        hub: ``OWNER/REPO[@REV]``: the plugin fetches ``<name>.safetensors`` from that hub repository.
        url: HTTPS URL the plugin fetches the weights from. Neither: the weights are bundled.
        requirements: ``requirements.txt`` lines; default tdsnn pinned to this checkout's commit
            (``requirements.pinned_requirement``; a dirty tree needs ``allow_dirty``).
        force: replace a non-empty ``directory/<plugin>`` that is not a previous export.

    Every check runs before anything is written (``ExportError`` and the errors of the
    registry, names and checkpoints).
    """
    check_model_name(name)
    entry = registry.resolve(name)
    check_model_name(entry.name)  # what a bare arch resolves to reaches the generated files too
    if weights is None and entry.weights is None:
        raise ExportError(f"{name} has no trained weights to export; pass weights=PATH (registered variants with "
                          f"weights: {', '.join(n for n in tdsnn.list_models() if '.' in n)})")
    source = _weights_source(f"{entry.name}.safetensors", hub, url)
    plugin_url = None
    if requirements is None:
        requirement, project_url, commit = pinned_requirement(allow_dirty=allow_dirty)
        requirements, plugin_url = [requirement], commit_url(project_url, commit)
    problems = requirement_problems(requirements)
    if problems:
        raise ExportError("; ".join(problems))
    directory = Path(directory)
    trained_here = weights is not None or entry.weights.path is not None
    expected, scratch = None, None
    if weights is not None:
        local = Path(weights)
    elif entry.weights.path is not None:
        local, expected = registry.weights_file(entry), entry.weights.sha256
    else:  # hub / torchvision state_dicts become a tdsnn checkpoint, identified by its own sha256
        _, model, _ = load_variant(name)
        scratch = Path(tempfile.mkdtemp(prefix="tdsnn-export-"))
        local = scratch / f"{entry.name}.safetensors"
        save_model(model, local)
    try:
        built = tdsnn.load_model(local, expected_sha256=expected)  # exactly what the plugin will build
        sha = sha256_file(local)
        if built.config.arch != entry.arch:
            raise ExportError(f"{local} holds a {built.config.arch}, not a {entry.arch}")
        plugin = ExportedPlugin(entry.name, model_identifier(entry.name, built, sha), source, sha,
                                CommitmentSpec.of(entry))
        folder = directory / plugin_dirname(plugin.base_id)
        _check_target(folder, force)
        metadata = metadata_text(plugin, entry, built, trained_here, plugin_url)

        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=directory, prefix=f".{folder.name}.new."))
        try:
            (staging / "__init__.py").write_text(INIT_PY.format(registrations=registrations(plugin.identifiers)))
            (staging / "model.py").write_text(MODEL_PY)
            (staging / PLUGIN_FILE).write_text(json.dumps(plugin.to_json(), indent=1) + "\n")
            (staging / "requirements.txt").write_text("\n".join(requirements) + "\n")
            (staging / "test.py").write_text(TEST_PY.format(ids=plugin.identifiers))
            (staging / "metadata.yml").write_text(metadata)
            if isinstance(source, BundledWeights):
                shutil.copyfile(local, staging / source.filename)
                local = folder / source.filename
            elif scratch is not None:  # the converted checkpoint to upload, beside the plugin folder
                atomic_write(directory / local.name, lambda tmp, src=local: shutil.copyfile(src, tmp))
                local = directory / local.name
            os.chmod(staging, 0o755)  # mkdtemp makes 0700
            _replace_folder(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return Export(folder, plugin, local, requirements)
