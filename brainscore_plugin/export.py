"""Write a registered tdsnn variant as an upstream brain-score/vision model plugin folder.

    python -m brainscore_plugin export tsresnet18.fmnist DIR

DIR/<plugin name>/ then holds what ``brainscore_vision/models/<plugin>/`` needs:
``__init__.py`` (one literal ``model_registry['<id>'] = lambda: ...`` line per id),
``model.py``, ``requirements.txt``, ``region_layer_map/<id>.json``, ``metadata.yml``,
``test.py`` and the weights file. Two ids are registered: the rate-coded model and its
per-timestep ``-temporal`` twin.
"""
from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path
from typing import Optional

import yaml

import tdsnn
from tdsnn import registry
from tdsnn.checkpoint import save_model
from tdsnn.registry import load_variant

from .commitment import BEHAVIORAL_READOUT_LAYER, VISUAL_DEGREES, model_identifier

REQUIREMENTS = ["torch", "torchvision", "spikingjelly==2.0.0", "topoloss==0.0.2", "safetensors", "pyyaml",
                f"tdsnn=={tdsnn.__version__}"]

BIBTEX = """@inproceedings{zhou2026tdsnn,
  title={Topographic Deep Spiking Neural Networks for the Primate Ventral Visual Stream},
  author={Zhou and Fang and Wang and Xu},
  booktitle={AAAI},
  year={2026},
  note={arXiv:2508.04270}
}"""

MODEL_PY = '''"""tdsnn model plugin: {name} ({arch}, T = {timesteps}) from tdsnn {version}."""
from pathlib import Path

from brainscore_plugin.commitment import TDSNNCommitment

NAME = {name!r}
WEIGHTS = Path(__file__).parent / {weights!r}
MODELS = {{{ids}}}  # identifier -> temporal


def commitment(identifier: str) -> TDSNNCommitment:
    model = TDSNNCommitment(NAME, weights=str(WEIGHTS), temporal=MODELS[identifier])
    if model.identifier != identifier:
        raise RuntimeError(f"{{WEIGHTS}} builds {{model.identifier}}, not {{identifier}}: the weights changed")
    return model


def get_model(identifier: str):
    """The activations model (Brain-Score's PytorchWrapper contract)."""
    return commitment(identifier).activations_model


def get_layers(identifier: str) -> list:
    return commitment(identifier).layers


def get_bibtex(identifier: str) -> str:
    return {bibtex!r}
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


def plugin_dirname(identifier: str) -> str:
    """A Python-package-safe folder name for an identifier."""
    return re.sub(r"[^0-9a-zA-Z_]", "_", identifier).lower()


def export_plugin(name: str, directory: str | Path, weights: Optional[str] = None) -> Path:
    """Write the plugin of registered variant ``name`` under ``directory``; returns its folder."""
    entry, model, sha = load_variant(name, weights)
    if weights is None and entry.weights is None:
        raise ValueError(f"{name} has no trained weights to export; pass weights=PATH "
                         f"(registered variants with weights: {', '.join(n for n in tdsnn.list_models() if '.' in n)})")
    weights_name = f"{entry.name}.safetensors"
    staging = Path(directory) / f".{weights_name}"
    Path(directory).mkdir(parents=True, exist_ok=True)
    if weights is not None or entry.weights.path is not None:  # tdsnn checkpoints travel as they are
        shutil.copyfile(Path(weights) if weights is not None
                        else registry.REGISTRY_PATH.parent / entry.weights.path, staging)
    else:  # hub / torchvision state_dicts become a tdsnn checkpoint, identified by its own sha256
        sha = save_model(model, staging)
    identifier = model_identifier(entry, model, sha)
    ids = [identifier, f"{identifier}-temporal"]
    folder = Path(directory) / plugin_dirname(identifier)
    (folder / "region_layer_map").mkdir(parents=True, exist_ok=True)
    source = folder / weights_name
    staging.replace(source)

    (folder / "__init__.py").write_text(INIT_PY.format(registrations="\n".join(
        f"model_registry['{i}'] = lambda: commitment('{i}')" for i in ids)))
    (folder / "model.py").write_text(MODEL_PY.format(
        name=entry.name, arch=entry.arch, timesteps=model.config.timesteps or "-", version=tdsnn.__version__,
        weights=weights_name, ids=", ".join(f"{i!r}: {i.endswith('-temporal')}" for i in ids), bibtex=BIBTEX))
    (folder / "requirements.txt").write_text("\n".join(REQUIREMENTS) + "\n")
    (folder / "test.py").write_text(TEST_PY.format(ids=ids))
    for i in ids:
        (folder / "region_layer_map" / f"{i}.json").write_text(json.dumps(entry.region_layer_map, indent=1))
    n_params = sum(p.numel() for p in model.parameters())
    metadata = {"models": {i: {
        "architecture": "DCNN", "model_family": "resnet", "total_parameter_count": n_params,
        "trainable_parameter_count": n_params, "total_layers": 18, "trainable_layers": 18,
        "model_size_mb": round(source.stat().st_size / 2 ** 20, 2), "training_dataset": entry.data,
        "task_specialization": "classification", "brainscore_link": None, "huggingface_link": None,
        "extra_notes": textwrap.shorten(
            f"tdsnn {entry.arch}: {'spiking (LIF), T=' + str(model.config.timesteps) if model.is_spiking else 'ANN'}"
            f"{', per-timestep time bins' if i.endswith('-temporal') else ', rate-coded'}; "
            f"visual_degrees={VISUAL_DEGREES}; behavioural readout {BEHAVIORAL_READOUT_LAYER}; sha256 {sha}",
            width=300),
        "runnable": True} for i in ids}}
    (folder / "metadata.yml").write_text(yaml.safe_dump(metadata, sort_keys=False))
    return folder
