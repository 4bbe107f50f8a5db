"""Bad input to the registry, registration and hub weights: a clear error (exit status 2 for
the command line, before any work) and nothing lost."""
import hashlib
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from torch.utils.data import TensorDataset

import tdsnn
from tdsnn import hub, registration
from tdsnn.checkpoint import CheckpointError
from tdsnn.names import InvalidName
from tdsnn.register import main as register_main

INJECTION = "x'] = 0; __import__('os').system('touch PWN') #"


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file below ``folder`` (hidden temporary files included)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def registered(tiny_run, registry_copy):
    """``resnet18.synth`` registered from ``tiny_run`` (float32) in a registry copy; returns
    the folder holding the registry and its weights."""
    assert register_main([str(tiny_run), "--tag", "synth"]) == 0
    return registry_copy.parent


@pytest.mark.parametrize("tag", [INJECTION, "/../../x", "../x", "Fmnist", "a.b", "", "x" * 65])
def test_bad_tag_exits_2_before_any_work(tag, tiny_run, registry_copy, capsys, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("registration started with a bad tag")
    monkeypatch.setattr(registration, "read_checkpoint", no_work)
    before = snapshot(registry_copy.parent), snapshot(tiny_run)
    with pytest.raises(SystemExit) as exit_:
        register_main([str(tiny_run), "--tag", tag])
    assert exit_.value.code == 2
    assert "invalid tag" in capsys.readouterr().err
    assert (snapshot(registry_copy.parent), snapshot(tiny_run)) == before
    assert not (registry_copy.parent / "weights").exists() and not Path("PWN").exists()


def test_traversing_tag_is_refused_by_the_api_too(tiny_run, registry_copy):
    with pytest.raises(InvalidName, match="invalid tag"):
        registration.register(tiny_run, "/../../x", default=False, half=False)
    assert not (registry_copy.parent / "weights").exists()
    assert not list(registry_copy.parent.parent.glob("*x.safetensors"))


def test_failed_evaluation_keeps_the_registered_weights(registered, tiny_run, capsys):
    """Re-registering with --half (other bytes) while the run's data has moved: exit 2,
    and the registered weights, card and registry are byte-identical."""
    before = snapshot(registered)
    config = tiny_run / "config.yaml"
    original = config.read_text()
    config.write_text(yaml.safe_dump({**yaml.safe_load(original), "data": f"folder:{registered / 'moved'}"}))
    try:
        assert register_main([str(tiny_run), "--tag", "synth", "--half"]) == 2
    finally:
        config.write_text(original)
    assert "moved" in capsys.readouterr().err
    assert snapshot(registered) == before
    tdsnn.create_model("resnet18.synth", pretrained=True)  # still loads, sha256 intact


def test_interrupted_evaluation_keeps_the_registered_weights(registered, tiny_run, monkeypatch):
    before = snapshot(registered)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(registration, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        registration.register(tiny_run, "synth", default=True, half=True)
    assert snapshot(registered) == before


def test_empty_evaluation_split_is_refused_not_recorded_as_0_percent(registered, tiny_run, monkeypatch, capsys):
    before = snapshot(registered)
    monkeypatch.setattr(registration, "build_dataset",
                        lambda *args, **kwargs: TensorDataset(torch.zeros(0, 3, 16, 16), torch.zeros(0).long()))
    assert register_main([str(tiny_run), "--tag", "synth", "--half"]) == 2
    assert "holds no images" in capsys.readouterr().err
    assert snapshot(registered) == before


def test_substituted_unpinned_hub_file_is_refused(caches):
    """``resnet18.in1k`` has no sha256 in the registry: the first load pins the cached file,
    a file substituted afterwards raises CheckpointError naming it, and is not loaded."""
    _, torch_home = caches
    cached = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), cached)
    with pytest.warns(UserWarning, match="not pinned"):
        tdsnn.create_model("resnet18.in1k", pretrained=True)
    pin = hub.pin_file("torchvision ResNet18_Weights.IMAGENET1K_V1")
    assert yaml.safe_load(pin.read_text())["sha256"] == hashlib.sha256(cached.read_bytes()).hexdigest()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # verified against the pin, silently
        tdsnn.create_model("resnet18.in1k", pretrained=True)
    pinned = pin.read_bytes()
    substitute = torchvision.models.resnet18(weights=None).state_dict()
    substitute["fc.bias"].fill_(1.0)
    torch.save(substitute, cached)
    with pytest.raises(CheckpointError, match=f"sha256 mismatch for {cached}: .*pinned on first use in {pin}"):
        tdsnn.create_model("resnet18.in1k", pretrained=True)
    assert pin.read_bytes() == pinned  # the pin is not moved to the substitute
