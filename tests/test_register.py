import shutil

import pytest
import torch
import yaml

import tdsnn
from tdsnn import registry
from tdsnn.register import main as register_main
from tdsnn.train import main as train_main


@pytest.fixture
def registry_copy(tmp_path, monkeypatch):
    path = tmp_path / "model_registry.yaml"
    shutil.copyfile(registry.REGISTRY_PATH, path)
    monkeypatch.setattr(registry, "REGISTRY_PATH", path)
    yield path
    registry._read_registry.cache_clear()


def test_register_writes_weights_card_and_registry_entry(tmp_path, registry_copy):
    run = tmp_path / "run"
    assert train_main(["--model", "resnet18", "--data", "synthetic:64", "--out", str(run), "--width", "0.25",
                       "--stem", "small", "--input-size", "16", "--batch-size", "16", "--workers", "0",
                       "--epochs", "1", "--lr", "0.002"]) == 0
    assert (run / "command.txt").read_text().startswith("tdsnn-train --model resnet18 --data synthetic:64")
    assert register_main([str(run), "--tag", "synth", "--default", "--half"]) == 0
    weights = registry_copy.parent / "weights" / "resnet18.synth.safetensors"
    card = (registry_copy.parent / "weights" / "resnet18.synth.md").read_text()
    entry = yaml.safe_load(registry_copy.read_text())["variants"]["resnet18.synth"]
    assert entry["default"] is True and entry["data"] == "synthetic:64"
    assert entry["weights"] == {"path": "weights/resnet18.synth.safetensors", "sha256": tdsnn.checkpoint.sha256_file(weights)}
    assert entry["config"] == {"width": 0.25, "stem": "small", "num_classes": 4, "input_size": 16}
    accuracy = entry["metrics"]["test_accuracy"]
    assert 0 <= accuracy <= 100 and f"**{accuracy:.2f} %**" in card
    assert "tdsnn-train --model resnet18 --data synthetic:64" in card
    assert "# The single source of truth" in registry_copy.read_text()  # comments survive
    assert tdsnn.resolve("resnet18").name == "resnet18.synth"
    model = tdsnn.create_model("resnet18", pretrained=True)
    assert model.conv1.weight.dtype == torch.float32 and model.config.input_size == 16
    trained = tdsnn.load_model(run / "train" / "final.safetensors")
    torch.testing.assert_close(model.conv1.weight, trained.conv1.weight, atol=1e-3, rtol=1e-3)
    assert register_main([str(run), "--tag", "synth", "--default"]) == 0  # again, now that it is the default
    entry = yaml.safe_load(registry_copy.read_text())["variants"]["resnet18.synth"]
    assert entry["config"] == {"width": 0.25, "stem": "small", "num_classes": 4, "input_size": 16}
    assert register_main([str(tmp_path / "missing"), "--tag", "x"]) == 2
