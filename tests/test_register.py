import pytest
import torch
import yaml

import tdsnn
from tdsnn import registry
from tdsnn.analysis.maps import V1_MAX_DIST_MM
from tdsnn.register import main as register_main


def test_register_writes_weights_card_and_registry_entry(tiny_run, registry_copy):
    run = tiny_run
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
    v1 = registry.architecture("resnet18").region_layer_map["V1"]
    assert f"V1 ({v1}) orientation smoothness" in card and f"up to {V1_MAX_DIST_MM:.1f} mm" in card
    assert "# The single source of truth" in registry_copy.read_text()  # comments survive
    assert tdsnn.resolve("resnet18").name == "resnet18.synth"
    assert "default" not in yaml.safe_load(registry_copy.read_text())["variants"]["resnet18.fmnist"]
    model = tdsnn.create_model("resnet18", pretrained=True)
    assert model.conv1.weight.dtype == torch.float32 and model.config.input_size == 16
    trained = tdsnn.load_model(run / "train" / "final.safetensors")
    torch.testing.assert_close(model.conv1.weight, trained.conv1.weight, atol=1e-3, rtol=1e-3)
    assert register_main([str(run), "--tag", "synth", "--default"]) == 0  # again, now that it is the default
    entry = yaml.safe_load(registry_copy.read_text())["variants"]["resnet18.synth"]
    assert entry["config"] == {"width": 0.25, "stem": "small", "num_classes": 4, "input_size": 16}
    assert not list(weights.parent.glob(".*"))  # no temporary files left


def test_register_reads_the_v1_layer_from_the_registry(tiny_run, registry_copy, capsys):
    text = registry_copy.read_text().replace("region_layer_map: {V1: layer2.0,", "region_layer_map: {V1: layer1.1,")
    registry_copy.write_text(text)
    registry._read_registry.cache_clear()
    assert register_main([str(tiny_run), "--tag", "synth"]) == 0
    assert "layer1.1 orientation smoothness" in capsys.readouterr().out
    assert "V1 (layer1.1) orientation smoothness" in (registry_copy.parent / "weights" / "resnet18.synth.md").read_text()


def test_register_missing_run_exits_2(tmp_path, registry_copy, capsys):
    before = registry_copy.read_text()
    assert register_main([str(tmp_path / "missing"), "--tag", "x"]) == 2
    assert "final.safetensors not found" in capsys.readouterr().err
    assert registry_copy.read_text() == before


def test_python_m_tdsnn_register_is_the_registration_cli():
    import tdsnn.register
    import tdsnn.registration
    assert tdsnn.register.main is tdsnn.registration.main
    with pytest.raises(SystemExit) as exit_:
        register_main(["--help"])
    assert exit_.value.code == 0


def test_remeasure_replaces_the_metrics_of_a_registered_variant(tiny_run, registry_copy, capsys):
    assert register_main([str(tiny_run), "--tag", "synth", "--half"]) == 0
    measured = yaml.safe_load(registry_copy.read_text())["variants"]["resnet18.synth"]["metrics"]
    card_path = registry_copy.parent / "weights" / "resnet18.synth.md"
    # a variant recorded by an older analysis: other numbers in the registry and the card
    stale = registry_copy.read_text().replace(f"test_accuracy: {measured['test_accuracy']}", "test_accuracy: 1.5")
    registry_copy.write_text(stale)
    card = card_path.read_text()
    card_path.write_text(card.replace(f"**{measured['test_accuracy']:.2f} %**", "**1.50 %**"))
    registry._read_registry.cache_clear()
    assert yaml.safe_load(registry_copy.read_text())["variants"]["resnet18.synth"]["metrics"]["test_accuracy"] == 1.5

    assert register_main(["--remeasure", "resnet18.synth"]) == 0
    entry = yaml.safe_load(registry_copy.read_text())["variants"]["resnet18.synth"]
    assert entry["metrics"] == pytest.approx(measured)
    assert entry["weights"]["path"] == "weights/resnet18.synth.safetensors"
    new_card = card_path.read_text()
    assert f"**{measured['test_accuracy']:.2f} %**" in new_card and "**1.50 %**" not in new_card
    assert new_card.count("| test accuracy |") == 1 and new_card.count("orientation smoothness |") == 1
    assert "python -m tdsnn.register --remeasure resnet18.synth" in new_card
    assert "tdsnn-train --model resnet18 --data synthetic:64" in new_card  # the provenance is kept
    assert "# The single source of truth" in registry_copy.read_text()
    assert "V4: blocks.2.attn, IT: blocks.3.attn}" in registry_copy.read_text()  # long flow mappings stay on one line
    assert "resnet18.synth: test accuracy" in capsys.readouterr().out


def test_register_from_names_a_registered_variants_weights_again(tiny_run, registry_copy, capsys):
    weights = registry_copy.parent / "weights"
    assert register_main([str(tiny_run), "--tag", "demo"]) == 0  # an earlier resnet18.demo with its own file
    assert register_main([str(tiny_run), "--tag", "synth", "--half"]) == 0
    source = yaml.safe_load(registry_copy.read_text())["variants"]["resnet18.synth"]
    capsys.readouterr()

    assert register_main(["--from", "resnet18.synth", "--tag", "demo", "--default"]) == 0
    entry = yaml.safe_load(registry_copy.read_text())["variants"]["resnet18.demo"]
    assert entry["weights"] == source["weights"] and entry["config"] == source["config"]
    assert entry["data"] == source["data"] and entry["default"] is True
    assert entry["metrics"] == pytest.approx(source["metrics"])  # measured afresh, same weights
    assert not (weights / "resnet18.demo.safetensors").exists()  # no entry names it any more
    assert (weights / "resnet18.synth.safetensors").exists()
    card = (weights / "resnet18.demo.md").read_text()
    assert card.startswith("# resnet18.demo\n\nThe weights of `resnet18.synth`, registered again as `resnet18.demo`.")
    assert "tdsnn-train --model resnet18 --data synthetic:64" in card  # the training provenance is kept
    assert "python -m tdsnn.register --from resnet18.synth --tag demo --default" in card
    assert card.count("| test accuracy |") == 1 and f"**{source['metrics']['test_accuracy']:.2f} %**" in card
    assert "resnet18.synth: test accuracy" in capsys.readouterr().out
    assert tdsnn.resolve("resnet18").name == "resnet18.demo"
    model = tdsnn.create_model("resnet18", pretrained=True)
    torch.testing.assert_close(model.conv1.weight, tdsnn.create_model("resnet18.synth", pretrained=True).conv1.weight)
    assert not list(weights.glob(".*"))
    before = registry_copy.read_text()
    assert register_main(["--from", "resnet18.synth", "--tag", "synth"]) == 2
    assert "names the variant itself" in capsys.readouterr().err and registry_copy.read_text() == before


@pytest.mark.parametrize("args, message", [
    (["--remeasure", "resnet18.nosuch"], "unknown model 'resnet18.nosuch'"),
    (["--remeasure", "resnet18.in1k"], "has no local weights"),
    (["--remeasure", "resnet18.fmnist"], "not a tdsnn model card"),  # registry copy without its weights folder
    (["--from", "resnet18.nosuch", "--tag", "x"], "unknown model 'resnet18.nosuch'"),
    (["--from", "resnet18.in1k", "--tag", "x"], "has no local weights"),
    (["--from", "resnet18.fmnist", "--tag", "fmnist"], "not a tdsnn model card"),
])
def test_remeasure_or_from_bad_input_exits_2_and_changes_nothing(args, message, registry_copy, capsys):
    before = registry_copy.read_text()
    assert register_main(args) == 2
    assert message in capsys.readouterr().err
    assert registry_copy.read_text() == before


@pytest.mark.parametrize("args", [["--remeasure", "resnet18.fmnist", "--tag", "x"], ["runs/x"], [],
                                  ["--from", "resnet18.fmnist"], ["--from", "resnet18.fmnist", "--tag", "x", "--half"],
                                  ["runs/x", "--from", "resnet18.fmnist", "--tag", "x"],
                                  ["--remeasure", "resnet18.fmnist", "--from", "resnet18.fmnist"]])
def test_register_refuses_mixed_or_missing_arguments(args, registry_copy):
    with pytest.raises(SystemExit) as exit_:
        register_main(args)
    assert exit_.value.code == 2
