"""The typed registry: every registered variant resolves and builds, and a malformed
registry file is refused with its file and line."""
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

import tdsnn
from tdsnn import registry
from tdsnn.checkpoint import CheckpointError, sha256_file
from tdsnn.names import check_model_name
from tdsnn.regions import REGIONS
from tdsnn.registry import RegistryError, load_registry


@pytest.mark.parametrize("name", tdsnn.list_models())
def test_every_registered_model_resolves_and_builds(name):
    entry = tdsnn.resolve(name)
    check_model_name(entry.name)
    assert entry.arch == name.split(".")[0] and (entry.name == name or "." not in name)
    assert set(entry.region_layer_map) == set(REGIONS)
    fast = {"sheet": {"n_clusters": 64}} if entry.config.sheet else {}  # clusters: training state only
    if entry.weights is not None and entry.weights.path is not None:
        assert sha256_file(registry.weights_file(entry)) == entry.weights.sha256
        model = tdsnn.create_model(name, pretrained=True, **fast)  # checks sha256 and header config again
    else:  # hub weights are not fetched here (tests/test_hub_models.py)
        model = tdsnn.create_model(name, **fast)
    for layer in entry.region_layer_map.values():
        model.get_submodule(layer)


def test_a_bare_name_builds_the_architecture_and_its_weights_are_the_default_variants():
    from tdsnn.training.pipeline import model_config
    for arch in ("sresnet18", "tsresnet18", "scornet", "spikformer"):
        default = tdsnn.resolve(arch)
        assert default.name == f"{arch}.fmnist" and default.config.width < 1.0  # a demo recipe
        assert model_config(arch, {}) == registry.architecture_config(arch)  # what tdsnn-train --model arch builds
        if not default.config.sheet:  # (a full-size sheet takes a while to lay out)
            assert tdsnn.create_model(arch).config == registry.architecture_config(arch)
        assert tdsnn.create_model(arch, pretrained=True).config == default.config
        assert model_config(default.name, {}) == default.config


def test_the_packaged_registry_is_the_default():
    assert registry.PACKAGED_REGISTRY.parent == registry.Path(tdsnn.__file__).resolve().parent
    if not os.environ.get("TDSNN_REGISTRY"):
        assert registry.REGISTRY_PATH == registry.PACKAGED_REGISTRY
    assert (registry.PACKAGED_REGISTRY.parent / "weights").is_dir()


def test_tdsnn_registry_selects_a_users_registry(tiny_registry, tmp_path):
    env = {**os.environ, "TDSNN_REGISTRY": str(tiny_registry)}
    done = subprocess.run([sys.executable, "-c", "import tdsnn; print(tdsnn.list_models('*.tiny'))"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resnet18.tiny" in done.stdout and "resnet18.fmnist" not in done.stdout


BASE = """\
region_layer_map: {V1: layer2.0, V2: layer3.0, V4: layer3.1, IT: layer4.1}
temporal: {t0_ms: 0, step_ms: 62.5}
architectures:
  resnet18:
    config: {}
variants:
"""


def registry_file(tmp_path, variants: str) -> "registry.Path":
    path = tmp_path / "model_registry.yaml"
    path.write_text(BASE + textwrap.indent(textwrap.dedent(variants), "  "))
    return path


def test_a_valid_file_parses(tmp_path):
    path = registry_file(tmp_path, """\
        resnet18.a:
          config: {num_classes: 10}
          data: fmnist
          default: true
        """)
    parsed = load_registry(path)
    assert parsed.entries["resnet18"].name == "resnet18.a" and parsed.lines["resnet18.a"] == 7
    assert parsed.architectures["resnet18"].config.num_classes == 1000


@pytest.mark.parametrize("variants, line, message", [
    ("resnet18.a:\n  region_layer_mpa: {V1: layer1.0}\n", 8, "unknown key 'region_layer_mpa' in variants.resnet18.a"),
    ("resnet18.a:\n  default: true\nresnet18.b:\n  default: true\n", 10,
     r"resnet18.b and resnet18.a \(line 7\) are both `default: true` for resnet18"),
    ("\"resnet18.x'] = 0; __import__('os').system('touch PWN') #\": {}\n", 7, "invalid model name"),
    ("resnet18.A: {}\n", 7, "invalid model name"),
    ("resnet18.a:\n  config: {timesteps: '4'}\n", 8, "timesteps must be int or null"),
    ("resnet18.a:\n  config: {stc: {alhpa: 1.0}}\n", 8, "unknown STCConfig options"),
    ("resnet18.a:\n  weights: {path: ../../x.safetensors, sha256: '" + "0" * 64 + "'}\n", 8, "not a relative path"),
    ("resnet18.a:\n  weights: {path: /etc/passwd, sha256: '" + "0" * 64 + "'}\n", 8, "not a relative path"),
    ("resnet18.a:\n  weights: {path: a.safetensors}\n", 8, "local weights need their sha256"),
    ("resnet18.a:\n  weights: {torchvision: X, sha256: abc}\n", 8, "sha256 must be 64 lower-case hex"),
    ("resnet18.a:\n  weights: {hub: {repo: a/b, file: c}}\n", 8, "unknown key 'file' in variants.resnet18.a.weights.hub"),
    ("resnet18.a:\n  data: fmnits\n", 8, "is not a data tag"),
    ("resnet18.a:\n  region_layer_map: {V3: layer1.0}\n", 8, "'V3'"),
    ("resnet18.a: {}\nresnet18.a: {}\n", 8, "duplicate key 'resnet18.a' \\(first on line 7\\)"),
    ("resnet18: {}\n", 7, "needs a tag"),
    ("vgg16.a: {}\n", 7, "architecture 'vgg16' is not under architectures"),
])
def test_a_malformed_registry_names_file_and_line(tmp_path, variants, line, message):
    path = registry_file(tmp_path, variants)
    with pytest.raises(RegistryError, match=f"^{path}:{line}: .*{message}"):
        load_registry(path)


def test_unknown_top_level_key_and_architecture(tmp_path):
    path = tmp_path / "model_registry.yaml"
    path.write_text(BASE.replace("temporal:", "temporl:"))
    with pytest.raises(RegistryError, match=f"^{path}:2: unknown key 'temporl' in the registry"):
        load_registry(path)
    path.write_text(BASE.replace("  resnet18:\n", "  vgg16:\n"))
    with pytest.raises(RegistryError, match=f"^{path}:4: architecture 'vgg16' has no implementation"):
        load_registry(path)


def test_checkpoint_header_must_match_the_registry(tiny_registry, tmp_path, monkeypatch):
    raw = yaml.safe_load(tiny_registry.read_text())
    spec = raw["variants"]["sresnet18.tiny"]
    spec["weights"]["path"] = "sresnet18.tiny.safetensors"
    spec["config"]["neuron"] = {"tau": 3.0}  # the checkpoint was trained with tau = 2
    spec["config"]["timesteps"] = 6
    edited = tiny_registry.parent / "edited_header.yaml"
    edited.write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(registry, "REGISTRY_PATH", edited)
    registry._read_registry.cache_clear()
    with pytest.raises(CheckpointError, match=r"header config differs from the registry entry sresnet18.tiny "
                                              r".*neuron.tau: 2.0 != 3.0; timesteps: 4 != 6"):
        tdsnn.create_model("sresnet18.tiny", pretrained=True)
    tdsnn.create_model("resnet18.tiny", pretrained=True)  # the unchanged entries still load
    registry._read_registry.cache_clear()
