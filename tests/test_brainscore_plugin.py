"""The Brain-Score plugin on tiny registered models, offline, through Brain-Score's own classes."""
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

import tdsnn
from tdsnn.checkpoint import save_model

from tiny import TINY, make_firing

from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet  # noqa: E402
from brainscore_vision.model_helpers.brain_transformation import ModelCommitment  # noqa: E402

from brainscore_plugin.commitment import activations_model, brain_model  # noqa: E402
from brainscore_plugin.check import overlay_site, registered_ids  # noqa: E402
from brainscore_plugin.export import export_plugin  # noqa: E402

#: A pinned requirement for exports in tests (the default pins this checkout's HEAD).
PINNED = "tdsnn @ git+https://github.com/tdsnn/tdsnn@" + "0" * 40

@pytest.fixture(scope="module")
def stimuli(tmp_path_factory):
    """7 generated images as a local StimulusSet (with the columns Brain-Score's tests read)."""
    root = tmp_path_factory.mktemp("stimuli")
    rng = np.random.default_rng(0)
    paths = {}
    for i in range(7):
        y, x = np.mgrid[0:48, 0:48] / 48
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * (3 + i) * (x * np.cos(i) + y * np.sin(i)))
        image = np.stack([wave, wave * rng.random(), 1 - wave], -1)
        Image.fromarray((image * 255).astype(np.uint8)).save(root / f"im{i}.png")
        paths[f"im{i}"] = str(root / f"im{i}.png")
    stimulus_set = StimulusSet(pd.DataFrame({"stimulus_id": list(paths), "object_name": ["a", "b"] * 3 + ["a"],
                                             "image_label": ["x", "y"] * 3 + ["x"]}))
    stimulus_set.stimulus_paths = paths
    stimulus_set.identifier = "tdsnn.tests.generated"
    return stimulus_set


def rates(name, stimuli, batch_size):
    _, model = activations_model(name, batch_size=batch_size)
    return model(stimuli, layers=["layer2.0", "layer4.1"])


@pytest.mark.parametrize("arch", ["sresnet18", "tsresnet18"])
def test_rates_are_exact_and_independent_of_batching(use_registry, stimuli, arch):
    one = rates(f"{arch}.tiny", stimuli, batch_size=1)
    seven = rates(f"{arch}.tiny", stimuli, batch_size=7)
    padded = rates(f"{arch}.tiny", stimuli, batch_size=4)  # last batch padded by Brain-Score
    assert one.shape == (7, 32 * 16 * 16 + 128 * 4 * 4)
    np.testing.assert_array_equal(one.values, seven.values)
    np.testing.assert_array_equal(one.values, padded.values)
    values = one.values * 4
    assert np.array_equal(values, np.round(values)) and values.min() >= 0 and values.max() <= 4
    assert 0.01 < one.values.mean() < 0.99
    assert list(one["stimulus_id"].values) == list(stimuli["stimulus_id"])


def test_rates_equal_the_models_own_block_outputs(use_registry, stimuli):
    entry, wrapper = activations_model("sresnet18.tiny", batch_size=7)
    got = wrapper(stimuli, layers=["layer3.1"])
    images = torch.as_tensor(wrapper._extractor.preprocess(list(stimuli.stimulus_paths.values())))
    with torch.no_grad():
        _, blocks = wrapper.model.eval().forward_blocks(images)
    np.testing.assert_allclose(got.values, blocks["layer3.1"].mean(0).flatten(1).numpy(), atol=1e-6)


def test_ann_is_a_plain_forward(use_registry, stimuli):
    _, wrapper = activations_model("resnet18.tiny", batch_size=7)
    got = wrapper(stimuli, layers=["layer4.1", "logits"])
    images = torch.as_tensor(wrapper._extractor.preprocess(list(stimuli.stimulus_paths.values())))
    with torch.no_grad():
        logits, blocks = wrapper.model.eval().forward_blocks(images)
    layer = got.sel(layer="layer4.1") if "layer" in got.dims else got[:, got["layer"].values == "layer4.1"]
    np.testing.assert_allclose(layer.values, blocks["layer4.1"][0].flatten(1).numpy(), atol=1e-5)
    np.testing.assert_allclose(got[:, got["layer"].values == "logits"].values, logits.numpy(), atol=1e-5)


def test_commitment_identifier_regions_and_tissue(use_registry, stimuli, tiny_registry):
    model = brain_model("tsresnet18.tiny", batch_size=7)
    sha = yaml.safe_load(tiny_registry.read_text())["variants"]["tsresnet18.tiny"]["weights"]["sha256"]
    assert isinstance(model, ModelCommitment)
    assert model.identifier == f"tsresnet18.tiny-T4-{sha[:8]}"
    assert model.visual_degrees() == 8
    for region, layer in {"V1": "layer2.0", "V2": "layer3.0", "V4": "layer3.1", "IT": "layer4.1"}.items():
        model.start_recording(region, [(70, 170)])
        it = model.look_at(stimuli)
        assert set(it["layer"].values) == {layer}
    assert it.dims == ("presentation", "neuroid") and it.shape == (7, 128 * 4 * 4)
    assert set(it["region"].values) == {"IT"}
    positions = model.activations_model.model.sheet("layer4.1").positions.numpy()
    np.testing.assert_array_equal(np.stack([it["tissue_x"].values, it["tissue_y"].values], 1),
                                  positions[it["neuroid_num"].values])
    assert len(set(it["neuroid_id"].values)) == it.shape[1]
    ann = brain_model("resnet18.tiny", batch_size=7)
    assert ann.identifier.startswith("resnet18.tiny-") and "-T" not in ann.identifier
    ann.start_recording("V1", [(70, 170)])
    assert "tissue_x" not in ann.look_at(stimuli).coords


def test_identifier_changes_with_the_weights(use_registry, tmp_path):
    model = make_firing(tdsnn.create_model("sresnet18", **TINY, timesteps=4))
    save_model(model, tmp_path / "a.safetensors")
    model.fc.bias.data += 1
    save_model(model, tmp_path / "b.safetensors")
    a = brain_model("sresnet18", weights=str(tmp_path / "a.safetensors")).identifier
    b = brain_model("sresnet18", weights=str(tmp_path / "b.safetensors")).identifier
    assert a != b and a.startswith("sresnet18-T4-")


def test_a_checkpoint_is_fed_images_at_its_own_input_size(use_registry, stimuli, tmp_path):
    size = TINY["input_size"]
    save_model(make_firing(tdsnn.create_model("sresnet18", **TINY)), tmp_path / "w.safetensors")
    assert tdsnn.resolve("sresnet18").config.input_size != size  # the entry's own size is another
    _, model = activations_model("sresnet18", weights=str(tmp_path / "w.safetensors"))
    paths = [stimuli.get_stimulus(i) for i in stimuli["stimulus_id"].values[:2]]
    assert model._extractor.preprocess(paths).shape == (2, 3, size, size)


def test_temporal_bins_align_through_brainscore(use_registry, stimuli):
    rate = brain_model("sresnet18.tiny", batch_size=7)
    rate.start_recording("IT", [(70, 170)])
    mean = rate.look_at(stimuli)
    temporal = brain_model("sresnet18.tiny", temporal=True, batch_size=7)
    assert temporal.identifier == rate.identifier + "-temporal"
    # per-step model bins 0-62.5, 62.5-125, 125-187.5, 187.5-250 ms
    temporal.start_recording("IT", [(0, 125), (125, 250)])
    halves = temporal.look_at(stimuli)
    assert halves.dims == ("presentation", "neuroid", "time_bin") and halves.sizes["time_bin"] == 2
    assert list(halves["time_bin_start"].values) == [0, 125]
    np.testing.assert_allclose(halves.values.mean(-1), mean.values, atol=1e-6)
    assert not np.allclose(halves.values[..., 0], halves.values[..., 1])  # the two halves differ
    values = halves.values * 2  # each half averages 2 binary steps
    assert np.array_equal(values, np.round(values))
    temporal.start_recording("IT", [(0, 250)])
    whole = temporal.look_at(stimuli)
    assert whole.dims == ("presentation", "neuroid")
    np.testing.assert_allclose(whole.values, mean.values, atol=1e-6)
    grouped = brain_model("sresnet18.tiny", temporal=True, steps_per_bin=2, batch_size=7)
    grouped.start_recording("IT", [(0, 125), (125, 250)])
    np.testing.assert_allclose(grouped.look_at(stimuli).values, halves.values, atol=1e-6)
    with pytest.raises(ValueError, match="not a multiple"):
        brain_model("sresnet18.tiny", temporal=True, steps_per_bin=3)


@pytest.mark.parametrize("preset", [None, "yes"])
def test_install_dependencies_default_respects_the_user(preset):
    env = {k: v for k, v in os.environ.items() if k != "BS_INSTALL_DEPENDENCIES"}
    if preset:
        env["BS_INSTALL_DEPENDENCIES"] = preset
    out = subprocess.run([sys.executable, "-c", "import brainscore_plugin, os; print(os.environ['BS_INSTALL_DEPENDENCIES'])"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == (preset or "no")


def test_export_loads_through_brainscore_and_passes_generic_tests(use_registry, stimuli, tmp_path):
    """A bundled export of a variant that only the test registry knows loads through
    brainscore_vision with no registry at all: the plugin carries what it needs."""
    done = export_plugin("sresnet18.tiny", tmp_path / "plugins", requirements=[PINNED])
    folder = done.folder
    ids = registered_ids(folder / "__init__.py")
    assert len(ids) == 2 and ids[1] == ids[0] + "-temporal"
    for needed in ("model.py", "plugin.json", "requirements.txt", "metadata.yml", "test.py", "sresnet18.tiny.safetensors"):
        assert (folder / needed).exists(), needed
    assert not (folder / "region_layer_map").exists()
    site = overlay_site(tmp_path, [folder])
    resources = site / "brainscore_vision" / "model_helpers" / "generic_plugin_tests_resources"
    resources.mkdir()
    for name, source in zip(["rgb1.jpg", "rgb2.jpg", "rgb3.png"], stimuli.stimulus_paths.values()):
        Image.open(source).convert("RGB").save(resources / name)
    env = {**os.environ, "PYTHONPATH": str(site), "TDSNN_REGISTRY": str(tmp_path / "no-registry.yaml")}
    script = (
        "import brainscore_vision, pandas as pd\n"
        "from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet\n"
        f"assert brainscore_vision.__file__.startswith({str(site)!r})\n"
        "import tdsnn, tdsnn.registry, pytest\n"
        "with pytest.raises(tdsnn.registry.RegistryError): tdsnn.list_models()  # no registry to lean on\n"
        f"model = brainscore_vision.load_model({ids[0]!r})\n"
        f"assert model.identifier == {ids[0]!r}\n"
        f"paths = {dict(stimuli.stimulus_paths)!r}\n"
        "s = StimulusSet(pd.DataFrame({'stimulus_id': list(paths), 'object_name': ['o'] * len(paths)}))\n"
        "s.stimulus_paths = paths; s.identifier = 'tdsnn.tests.export'\n"
        "model.start_recording('IT', [(70, 170)])\n"
        "a = model.look_at(s)\n"
        "print('SHAPE', a.shape, float(a.values.mean()) > 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SHAPE (7, 2048) True" in proc.stdout
    generic = site / "brainscore_vision" / "model_helpers" / "generic_plugin_tests.py"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(generic),
                           "--plugin_directory", str(site / "brainscore_vision" / "models" / folder.name),
                           str(folder / "test.py")], env=env, capture_output=True, text=True, timeout=900,
                          cwd=site / "brainscore_vision" / "model_helpers")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
