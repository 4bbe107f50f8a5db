import os
import shutil
import tempfile

import pytest
import torch
import yaml

import brainscore_plugin  # noqa: F401  (never lets Brain-Score pip-install plugin requirements)
from tiny import ARCHS, TINY, make_firing

os.environ.setdefault("OMP_NUM_THREADS", "2")
# Brain-Score reads these at import time: keep its caches and downloads inside a scratch
# folder. tdsnn's own cache (hub weight pins) goes there too.
_BS_SCRATCH = tempfile.mkdtemp(prefix="tdsnn-tests-bs-")
for _key, _value in {"TDSNN_CACHE": f"{_BS_SCRATCH}/tdsnn", "RESULTCACHING_DISABLE": "1",
                     "BRAINIO_HOME": f"{_BS_SCRATCH}/brainio",
                     "BRAINSCORE_HOME": f"{_BS_SCRATCH}/brainscore", "BRAINSCORE_SKIP_MEMORY_CHECK": "1",
                     "AWS_EC2_METADATA_DISABLED": "true"}.items():
    os.environ.setdefault(_key, _value)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory):
    """A registry of ``<arch>.tiny`` variants (TINY options, 4 classes, T = 4 for spiking
    ones, firing weights files, data tag ``synthetic``); returns its path."""
    from tdsnn import registry
    from tdsnn.checkpoint import save_model

    root = tmp_path_factory.mktemp("registry")
    raw = yaml.safe_load(registry.REGISTRY_PATH.read_text())
    raw["variants"] = {}
    for arch in ARCHS:
        torch.manual_seed(1)
        defaults = registry.architecture_config(arch)
        options = dict(TINY, num_classes=4, **({"timesteps": 4} if defaults.timesteps is not None else {}))
        if defaults.sheet is not None:
            options["sheet"] = {"n_clusters": 256}  # training state only; 20,000 take seconds per sheet
        model = make_firing(registry.build(defaults.replace(**options)))
        sha = save_model(model, root / f"{arch}.tiny.safetensors")
        raw["variants"][f"{arch}.tiny"] = {"config": options, "data": "synthetic",
                                           "weights": {"path": f"{arch}.tiny.safetensors", "sha256": sha}}
    path = root / "model_registry.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def use_registry(tiny_registry, monkeypatch):
    """``tiny_registry`` in use, in this process and in child processes."""
    from tdsnn import registry

    monkeypatch.setattr(registry, "REGISTRY_PATH", tiny_registry)
    monkeypatch.setenv("TDSNN_REGISTRY", str(tiny_registry))
    return tiny_registry


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished ``tdsnn-train`` run of a tiny resnet18 on ``synthetic:64`` (one epoch); returns its folder."""
    from tdsnn.train import main as train_main

    run = tmp_path_factory.mktemp("run") / "resnet18-synth"
    assert train_main(["--model", "resnet18", "--data", "synthetic:64", "--out", str(run), "--width", "0.25",
                       "--stem", "small", "--input-size", "16", "--batch-size", "16", "--workers", "0",
                       "--epochs", "1", "--lr", "0.002"]) == 0
    return run


@pytest.fixture
def registry_copy(tmp_path, monkeypatch):
    """A copy of the packaged registry (no weights beside it) in use; returns its path."""
    from tdsnn import registry

    path = tmp_path / "model_registry.yaml"
    shutil.copyfile(registry.PACKAGED_REGISTRY, path)
    monkeypatch.setattr(registry, "REGISTRY_PATH", path)
    registry._read_registry.cache_clear()
    yield path
    registry._read_registry.cache_clear()


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty, offline Hugging Face and torch.hub caches (and tdsnn's pins) under ``tmp_path``."""
    from huggingface_hub import constants as hf_constants

    hf_home, torch_home = tmp_path / "hf", tmp_path / "torch"
    monkeypatch.setenv("TDSNN_CACHE", str(tmp_path / "tdsnn"))
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    # huggingface_hub reads its environment at import: point its constants there too.
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return hf_home, torch_home
