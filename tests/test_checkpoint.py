import pytest
import torch
import yaml

import tdsnn
from tdsnn import registry
from tdsnn.checkpoint import CheckpointError, read_checkpoint, save_model, sha256_file

from tiny import TINY


@pytest.mark.parametrize("name", ["resnet18", "sresnet18", "tsresnet18"])
def test_round_trip_rebuilds_model(tmp_path, name):
    model = tdsnn.create_model(name, **TINY)
    path = tmp_path / f"{name}.safetensors"
    digest = save_model(model, path)
    assert digest == sha256_file(path) and len(digest) == 64
    loaded = tdsnn.load_model(path, expected_sha256=digest)
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves nothing behind


def test_half_storage_keeps_sheets_exact(tmp_path):
    model = tdsnn.create_model("tsresnet18", **TINY)
    path = tmp_path / "m.safetensors"
    save_model(model, path, half=True)
    _, state = read_checkpoint(path)
    assert state["conv1.weight"].dtype == torch.float16
    assert state["bn1.running_var"].dtype == torch.float16
    sheet_keys = [k for k in state if k.startswith("sheets.")]
    assert sheet_keys and all(torch.equal(state[k], model.state_dict()[k]) for k in sheet_keys)
    loaded = tdsnn.create_model("tsresnet18", weights=path)
    torch.testing.assert_close(loaded.conv1.weight, model.conv1.weight, atol=1e-3, rtol=1e-3)


def test_weights_without_clusters_resample_them_from_the_stored_positions(tmp_path):
    from tdsnn.config import SheetConfig
    model = tdsnn.create_model("tsresnet18", **TINY)
    sheet = model.sheets["layer2_0"]
    swapped = sheet.positions[torch.randperm(len(sheet.positions))]
    sheet.set_positions(swapped, SheetConfig(seed=5))  # clusters that a fresh build cannot know
    path = tmp_path / "m.safetensors"
    save_model(model, path, clusters=False)
    _, state = read_checkpoint(path)
    assert not [k for k in state if k.endswith("clusters")] and "sheets.layer2_0.positions" in state
    loaded = tdsnn.create_model("tsresnet18", weights=path)
    reference = tdsnn.create_model("tsresnet18", **TINY)
    reference.sheets["layer2_0"].set_positions(swapped, model.config.sheet)
    got = loaded.sheets["layer2_0"]
    assert torch.equal(got.positions, swapped) and not got.clusters_stale
    assert torch.equal(got.clusters, reference.sheets["layer2_0"].clusters)  # resampled from the loaded positions
    assert not torch.equal(got.clusters, sheet.clusters)


def test_bad_checkpoints_are_refused(tmp_path, monkeypatch):
    model = tdsnn.create_model("sresnet18", **TINY)
    path = tmp_path / "m.safetensors"
    digest = save_model(model, path)
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        tdsnn.load_model(path, expected_sha256="0" * 64)
    with pytest.raises(CheckpointError, match="not found"):
        tdsnn.load_model(tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        tdsnn.load_model(corrupt)
    with pytest.raises(CheckpointError, match="does not fit"):
        tdsnn.create_model("sresnet18", width=0.5, weights=path)
    with pytest.raises(CheckpointError, match="holds a sresnet18, not a resnet18"):
        tdsnn.create_model("resnet18", weights=path)
    assert tdsnn.create_model("sresnet18", weights=path, timesteps=2).config.timesteps == 2
    bare = yaml.safe_load(registry.REGISTRY_PATH.read_text()) | {"variants": {}}
    (tmp_path / "model_registry.yaml").write_text(yaml.safe_dump(bare))
    monkeypatch.setattr(registry, "REGISTRY_PATH", tmp_path / "model_registry.yaml")
    with pytest.raises(CheckpointError, match="no registered weights"):
        tdsnn.create_model("sresnet18", pretrained=True)
    assert sha256_file(path) == digest  # nothing was modified
