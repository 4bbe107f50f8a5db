import os
import tempfile

import pytest
import torch
import yaml

from tiny import ARCHS, TINY, make_firing

os.environ.setdefault("OMP_NUM_THREADS", "2")
# Brain-Score reads these at import time: keep its caches and downloads inside a scratch
# folder and never let it pip-install plugin requirements.
_BS_SCRATCH = tempfile.mkdtemp(prefix="tdsnn-tests-bs-")
for _key, _value in {"RESULTCACHING_DISABLE": "1", "BRAINIO_HOME": f"{_BS_SCRATCH}/brainio",
                     "BRAINSCORE_HOME": f"{_BS_SCRATCH}/brainscore", "BRAINSCORE_SKIP_MEMORY_CHECK": "1",
                     "BS_INSTALL_DEPENDENCIES": "no", "AWS_EC2_METADATA_DISABLED": "true"}.items():
    os.environ.setdefault(_key, _value)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory):
    """A registry of ``<arch>.tiny`` variants (TINY options, 4 classes, T = 4 for spiking
    ones, firing weights files, data tag ``synthetic``); returns its path."""
    import tdsnn
    from tdsnn import registry
    from tdsnn.checkpoint import save_model

    root = tmp_path_factory.mktemp("registry")
    raw = yaml.safe_load(registry.REGISTRY_PATH.read_text())
    raw["variants"] = {}
    for arch in ARCHS:
        torch.manual_seed(1)
        options = dict(TINY, num_classes=4, **({"timesteps": 4} if arch.startswith(("s", "ts")) else {}))
        model = make_firing(tdsnn.create_model(arch, **options))
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
