"""Hub-hosted weights (torchvision ImageNet ResNet-18, TopoNets ResNet-18s), with no network.

Local files in the upstream formats stand in for the downloads: a TopoNets-layout
state_dict in a Hugging Face hub cache, a torchvision state_dict in torch.hub's cache.
"""
import os
import subprocess
import sys
import time
import urllib.error
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
import yaml
from huggingface_hub import constants as hf_constants
from torch import nn

import tdsnn
from tdsnn import hub, network, registry
from tdsnn.checkpoint import CheckpointError, WeightsUnavailable, save_model, sha256_file

from tiny import TINY

REPO = "murtylab/topo-resnet18-imagenet"
REVISION = "0123456789abcdef0123456789abcdef01234567"
TORCHVISION_FILE = "resnet18-f37072fd.pth"  # the file name of ResNet18_Weights.IMAGENET1K_V1
BINOMIAL = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16


def random_resnet18() -> nn.Module:
    """torchvision resnet18 with random weights and batch-norm statistics, in eval mode."""
    model = torchvision.models.resnet18(weights=None).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return model


def blurred_convs(model: nn.Module) -> list[str]:
    """TopoNets wrap every strided conv with >= 16 input channels."""
    return [n for n, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and max(m.stride) > 1 and m.in_channels >= 16]


def toponets_state(model: nn.Module) -> dict:
    """``model``'s state_dict in the TopoNets BlurPool layout (channels_last, as they trained)."""
    state = model.to(memory_format=torch.channels_last).state_dict()
    for name in blurred_convs(model):
        weight = state.pop(f"{name}.weight")
        state[f"{name}.conv.weight"] = weight
        state[f"{name}.blur_filter"] = BINOMIAL.expand(weight.shape[1], 1, 3, 3).clone()
    return state


def blurpool_reference(model: nn.Module) -> nn.Module:
    """``model`` with a fixed depthwise binomial blur inserted before each wrapped conv."""
    for name in blurred_convs(model):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        conv = getattr(parent, child)
        blur = nn.Conv2d(conv.in_channels, conv.in_channels, 3, padding=1, groups=conv.in_channels, bias=False)
        blur.weight.data.copy_(BINOMIAL.expand(conv.in_channels, 1, 3, 3))
        setattr(parent, child, nn.Sequential(blur, conv))
    return model


def put_hub_file(hf_home: Path, filename: str, state: dict) -> Path:
    """Save ``state`` into the hub cache layout: snapshots/<rev>/<filename> and refs/main."""
    folder = hf_home / "hub" / f"models--{REPO.replace('/', '--')}"
    (folder / "snapshots" / REVISION).mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(REVISION)
    path = folder / "snapshots" / REVISION / filename
    torch.save(state, path)
    return path


def put_torchvision_file(torch_home: Path, state: dict) -> Path:
    path = torch_home / "hub" / "checkpoints" / TORCHVISION_FILE
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return path


def use_registry(tmp_path, monkeypatch, sha256: dict[str, str]) -> None:
    """A temporary copy of the registry with the given variants' sha256 set."""
    raw = yaml.safe_load(registry.REGISTRY_PATH.read_text())
    for name, digest in sha256.items():
        raw["variants"][name]["weights"]["sha256"] = digest
    path = tmp_path / "model_registry.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(registry, "REGISTRY_PATH", path)
    registry._read_registry.cache_clear()


def test_toponets_weights_load_strictly_from_hf_cache(caches):
    hf_home, _ = caches
    reference = random_resnet18()
    path = put_hub_file(hf_home, "all_topo_tau_10.0.pt", toponets_state(reference))
    with pytest.warns(UserWarning, match=f"record `sha256: {sha256_file(path)}`"):
        model = tdsnn.create_model("toponet_resnet18.in1k_tau10", pretrained=True).eval()
    assert model.config.blurpool and model.config.topoloss.tau == 10.0
    state = torch.load(path, weights_only=True)
    assert set(model.state_dict()) == set(state)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    layers = [loss.layer_name for loss in model.topoloss.losses]
    assert {"layer2.0.conv1.conv", "layer3.0.conv1.conv", "layer4.0.conv1.conv", "layer2.0.conv2"} <= set(layers)
    assert torch.isfinite(model.topo_loss()[0])

    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), blurpool_reference(reference)(x), atol=1e-4, rtol=1e-4)
        conv = model.layer2[0].conv1
        h = torch.randn(1, 2, 64, 8, 8)
        expected = F.conv2d(F.conv2d(h[0], BINOMIAL.expand(64, 1, 3, 3), padding=1, groups=64),
                            conv.conv.weight, stride=2, padding=1)
        torch.testing.assert_close(conv(h)[0], expected)


def test_imagenet_resnet18_loads_from_torch_hub_cache(caches):
    _, torch_home = caches
    reference = random_resnet18()
    put_torchvision_file(torch_home, reference.state_dict())
    with pytest.warns(UserWarning, match="not pinned"):
        model = tdsnn.create_model("resnet18.in1k", pretrained=True).eval()
    entry = tdsnn.resolve("resnet18.in1k")
    assert entry.preprocessing.size == 224 and entry.preprocessing.mean == (0.485, 0.456, 0.406)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-4, rtol=1e-4)


def test_registered_sha256_is_checked(caches, tmp_path, monkeypatch):
    hf_home, torch_home = caches
    hub_path = put_hub_file(hf_home, "all_topo_tau_10.0.pt", toponets_state(random_resnet18()))
    put_torchvision_file(torch_home, random_resnet18().state_dict())
    use_registry(tmp_path, monkeypatch, {"toponet_resnet18.in1k_tau10": sha256_file(hub_path),
                                         "resnet18.in1k": "0" * 64})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tdsnn.create_model("toponet_resnet18.in1k_tau10", pretrained=True)
    with pytest.raises(CheckpointError, match="sha256 mismatch .*expected 0000"):
        tdsnn.create_model("resnet18.in1k", pretrained=True)
    with pytest.raises(ValueError, match="exactly one of path, hub, torchvision"):
        registry.Weights(path="a.safetensors", torchvision="ResNet18_Weights.IMAGENET1K_V1")


def test_empty_caches_offline_fail_fast(caches, monkeypatch):
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable, match=f"weights unavailable offline: hf://{REPO}/all_topo_tau_0.5.pt"):
        tdsnn.create_model("toponet_resnet18.in1k_tau0p5", pretrained=True)
    with pytest.raises(WeightsUnavailable,
                       match="weights unavailable offline: torchvision ResNet18_Weights.IMAGENET1K_V1"):
        tdsnn.create_model("resnet18.in1k", pretrained=True)
    assert time.monotonic() - start < 10

    # Not flagged offline, but no server answers: one probe each, with the timeout, no retries.
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    timeouts = []

    def unreachable(request, timeout):
        timeouts.append(timeout)
        raise urllib.error.URLError("no route to host")
    monkeypatch.setattr(network.urllib.request, "urlopen", unreachable)
    with pytest.raises(WeightsUnavailable, match=f"weights unavailable offline: hf://{REPO}/all_topo_tau_20.0.pt"):
        tdsnn.create_model("toponet_resnet18.in1k_tau20", pretrained=True)
    with pytest.raises(WeightsUnavailable, match="weights unavailable offline: torchvision"):
        tdsnn.create_model("resnet18.in1k", pretrained=True)
    assert timeouts == [hub.TIMEOUT_S] * 2


def test_without_pretrained_nothing_is_fetched(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("create_model(pretrained=False) fetched weights")
    monkeypatch.setattr(hub, "hub_file", forbidden)
    monkeypatch.setattr(hub, "torchvision_file", forbidden)
    assert isinstance(tdsnn.create_model("toponet_resnet18.in1k_tau10").layer2[0].conv1, tdsnn.models.resnet.BlurPoolConv2d)
    tdsnn.create_model("resnet18.in1k")


def test_blurpool_is_recorded_in_checkpoints(tmp_path):
    model = tdsnn.create_model("toponet_resnet18", blurpool=True, **TINY)
    assert "layer2.0.downsample.0.blur_filter" in model.state_dict()  # 16 input channels at width 0.25
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    loaded = tdsnn.load_model(path)
    assert loaded.config.blurpool and set(loaded.state_dict()) == set(model.state_dict())


def test_environment_caches_in_a_fresh_process(tmp_path):
    """HF_HOME and TORCH_HOME as a user sets them (read at import); cached files are used
    without asking the network, so HF_HUB_OFFLINE is not needed."""
    hf_home, torch_home = tmp_path / "hf", tmp_path / "torch"
    put_hub_file(hf_home, "all_topo_tau_50.0.pt", toponets_state(random_resnet18()))
    put_torchvision_file(torch_home, random_resnet18().state_dict())
    env = {**os.environ, "HF_HOME": str(hf_home), "TORCH_HOME": str(torch_home), "PYTHONWARNINGS": "ignore",
           "TDSNN_CACHE": str(tmp_path / "tdsnn")}
    for key in ("HF_HUB_CACHE", "HF_HUB_OFFLINE"):
        env.pop(key, None)
    code = ("import tdsnn\n"
            "for name in ('toponet_resnet18.in1k_tau50', 'resnet18.in1k'):\n"
            "    tdsnn.create_model(name, pretrained=True)\n"
            "print('loaded')")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr[-2000:]


def test_cached_hub_model_exports_as_a_brainscore_plugin(caches, tmp_path):
    from brainscore_plugin.commitment import model_identifier
    from brainscore_plugin.export import export_plugin, plugin_dirname
    from tdsnn.registry import load_variant

    _, torch_home = caches
    put_torchvision_file(torch_home, random_resnet18().state_dict())
    with pytest.warns(UserWarning, match="not pinned"):
        export = export_plugin("resnet18.in1k", tmp_path / "plugins", allow_dirty=True)
    weights = export.folder / "resnet18.in1k.safetensors"  # bundled: neither a hub nor a URL was given
    entry, model, sha = load_variant("resnet18.in1k", str(weights))
    assert sha == sha256_file(weights) == export.plugin.sha256
    identifier = model_identifier(entry.name, model, sha)
    assert export.folder.name == plugin_dirname(identifier)
    assert f"model_registry[{identifier!r}]" in (export.folder / "__init__.py").read_text()
    assert not list((tmp_path / "plugins").glob(".*"))
