"""TSCornet and TSpikformer through the training pipeline, per-architecture time bins, and
the temporal suite's Fisher information over time and accuracy against inference T."""
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import TensorDataset

from harness import figures, report, score
from harness.suites import Options, SuiteResult, keys, temporal
from tdsnn import registry
from tdsnn.analysis.fisher import connection_weights, fisher_over_time
from tdsnn.analysis.responses import block_rates
from tdsnn.analysis.timesteps import (FEEDFORWARD_TIMESTEPS, RECURRENT_TIMESTEPS, accuracy_by_timesteps,
                                      inference_timesteps)
from tdsnn.checkpoint import read_config
from tdsnn.models import TWINS
from tdsnn.regions import REGIONS
from tdsnn.registry_file import RegistryError, parse_registry
from tdsnn.training.cli import main as train_main

from tiny import ARCHS, TINY, make_firing

NEW_TOPOGRAPHIC = ["tscornet", "tspikformer"]
#: A tiny run: 32 synthetic images of 16 px, T = 4 (IT of a CORnet first sees the image at step 3).
TRAIN = ["--data", "synthetic:32", "--width", "0.25", "--stem", "small", "--input-size", "16", "--batch-size", "16",
         "--workers", "0", "--lr", "0.002", "--warmup-epochs", "0.5", "--timesteps", "4", "--epochs", "1",
         "--swap-windows", "10", "--swap-steps", "10", "--clusters", "2"]


@pytest.fixture
def few_clusters(tmp_path):
    """A --config file that keeps sheet construction to a fraction of a second."""
    path = tmp_path / "few_clusters.yaml"
    path.write_text("model_options:\n  sheet: {n_clusters: 200}\n")
    return ["--config", str(path)]


def train(out, *args):
    return train_main(["--out", str(out), *TRAIN, *args])


# ----------------------------------------------------------------------------- pipeline

@pytest.mark.parametrize("arch", NEW_TOPOGRAPHIC)
def test_pipeline_runs_aux_swap_train_and_resumes(arch, tmp_path, few_clusters, capsys):
    out = tmp_path / "run"
    assert train(out, "--model", arch, *few_clusters, "--max-steps", "1") == 0  # the aux stage stops early
    assert not (out / "aux" / "stage.json").exists() and not (out / "swap").exists()
    assert train(out, "--model", arch, *few_clusters) == 2  # a checkpoint without --resume is refused
    assert train(out, "--model", arch, *few_clusters, "--resume") == 0
    assert "resumed" in capsys.readouterr().out
    for stage in ("aux", "swap", "train"):
        assert (out / stage / "stage.json").exists(), stage
    aux = json.loads((out / "aux" / "stage.json").read_text())
    config = read_config(aux["path"])
    assert config.arch == TWINS[arch] and config.sheet is None and config.stc is None and config.timesteps == 4
    blocks = registry.build(registry.architecture_config(arch).replace(**TINY)).block_names
    swap = json.loads((out / "swap" / "stage.json").read_text())
    assert list(swap["layers"]) == list(blocks)
    final = load_file(str(out / "train" / "final.safetensors"))
    for block, positions in load_file(str(out / "swap" / "positions.safetensors")).items():
        assert torch.equal(final[f"sheets.{block.replace('.', '_')}.positions"], positions), block
    assert train(out, "--model", arch, *few_clusters, "--resume") == 0  # everything done: a no-op
    assert capsys.readouterr().out.count("skipped") == 3
    bad = tmp_path / "bad"
    assert train(bad, "--model", arch, *few_clusters, "--aux-weights", str(out / "train" / "final.safetensors")) == 2
    assert f"not an {TWINS[arch]}" in capsys.readouterr().err and not bad.exists()


@pytest.mark.parametrize("arch", NEW_TOPOGRAPHIC)
def test_nan_guard_stops_the_aux_stage(arch, tmp_path, few_clusters, capsys):
    out = tmp_path / "run"
    assert train(out, "--model", arch, *few_clusters, "--epochs", "3", "--lr", "1e20",
                 "--checkpoint-minutes", "0") == 3
    assert re.search(r"non-finite|loss became", capsys.readouterr().err)
    assert (out / "aux" / "stopped.json").exists() and not (out / "aux" / "stage.json").exists()


@pytest.mark.parametrize("arch", NEW_TOPOGRAPHIC)
def test_ddp_two_cpu_ranks_stay_identical(arch, tmp_path, few_clusters):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tdsnn.train", "--model", arch, "--out", str(out), *TRAIN, *few_clusters, "--batch-size", "8"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    prints = json.loads((out / "train" / "stage.json").read_text())["rank_fingerprints"]
    assert len(prints) == 2 and prints[0] == prints[1] and prints[0] != 0


@pytest.mark.parametrize("arch", ["sresnet18", "scornet", "spikformer"])
def test_block_rates_take_the_models_own_blocks(arch):
    model = make_firing(registry.build(registry.architecture_config(arch).replace(**TINY, timesteps=2)))
    images = torch.rand(3, 3, 32, 32)
    block = model.block_names[-1]
    rates = block_rates(model, images, ((0.5,) * 3, (0.25,) * 3), [block], progress=False)
    assert rates[block].shape == (3, int(np.prod(model.block_dims()[block])))
    with pytest.raises(ValueError, match=f"unknown blocks \\['nope'\\] of {arch}; valid: {model.block_names[0]}"):
        block_rates(model, images, ((0.5,) * 3, (0.25,) * 3), ["nope"], progress=False)


# ----------------------------------------------------------------------------- registry time bins

REGISTRY = """\
region_layer_map: {V1: V1, V2: V2, V4: V4, IT: IT}
temporal: {t0_ms: 0, step_ms: 62.5}
architectures:
  scornet:
    config: {timesteps: 10, neuron: {}}
    temporal: %s
variants:
  scornet.a: {}
  scornet.b:
    temporal: {t0_ms: 10}
"""


def test_architecture_time_bins_override_the_shared_ones(tmp_path):
    parsed = parse_registry(REGISTRY % "{step_ms: 25}", tmp_path / "r.yaml")
    assert parsed.architectures["scornet"].temporal == {"t0_ms": 0, "step_ms": 25}
    assert parsed.entries["scornet.a"].temporal == {"t0_ms": 0, "step_ms": 25}  # variants inherit them
    assert parsed.entries["scornet.b"].temporal == {"t0_ms": 10, "step_ms": 25}
    for arch in ("scornet", "tscornet"):  # the packaged entries: one bin per step over 0-250 ms
        entry = registry.architecture(arch)
        assert entry.config.timesteps * entry.temporal["step_ms"] == 250 and entry.temporal["t0_ms"] == 0


@pytest.mark.parametrize("temporal, message", [("{step: 25}", "'step': 25 is not one of t0_ms, step_ms"),
                                               ("{step_ms: fast}", "'step_ms': 'fast' is not one of"),
                                               ("{step_ms: true}", "'step_ms': True is not one of"),
                                               ("[25]", "must be a mapping")])
def test_bad_architecture_time_bins_name_the_line(tmp_path, temporal, message):
    path = tmp_path / "r.yaml"
    with pytest.raises(RegistryError, match=f"^{re.escape(str(path))}:6: architectures.scornet.temporal.*"
                                            f"{re.escape(message)}"):
        parse_registry(REGISTRY % temporal, path)


# ----------------------------------------------------------------------------- Fisher information

class LinearSoftmax(nn.Module):
    """Logits ``fc(t * x)`` at steps t = 1..T, averaged: a model whose gradients are known."""

    def __init__(self, features: int, classes: int, timesteps: int):
        super().__init__()
        self.fc = nn.Linear(features, classes)
        self.timesteps = timesteps

    def forward(self, x):
        steps = torch.arange(1, self.timesteps + 1, dtype=x.dtype)[:, None, None]
        return self.fc(steps * x.flatten(1)).mean(0)


def test_fisher_of_a_linear_softmax_model_is_known():
    torch.manual_seed(3)
    model = LinearSoftmax(features=6, classes=3, timesteps=4).double()
    images, labels = torch.randn(5, 1, 2, 3, dtype=torch.float64), torch.tensor([0, 2, 1, 1, 0])
    weights = {"W": [model.fc.weight], "W and b": [model.fc.weight, model.fc.bias]}
    fisher = fisher_over_time(model, images, labels, weights).numpy()
    # After t steps the logits are W x (t + 1) / 2 + b, so d log p_y / dW = (e_y - p) x_t^T, d/db = e_y - p.
    w, b = model.fc.weight.detach().numpy(), model.fc.bias.detach().numpy()
    expected = np.zeros((4, 2))
    for x, y in zip(images.flatten(1).numpy(), labels.numpy()):
        for t in range(1, 5):
            x_t = x * (t + 1) / 2
            logits = w @ x_t + b
            p = np.exp(logits - logits.max())
            p /= p.sum()
            residual = np.eye(3)[y] - p
            expected[t - 1] += [residual @ residual * (x_t @ x_t), residual @ residual * (x_t @ x_t + 1)]
    np.testing.assert_allclose(fisher, expected / 5, rtol=1e-10)
    assert model.fc.weight.grad is None  # gradients are taken, not accumulated


@pytest.mark.parametrize("arch", [a for a in ARCHS if registry.architecture_config(a).timesteps])
def test_fisher_of_every_spiking_model_is_finite_per_step_and_region(arch):
    config = registry.architecture_config(arch).replace(**TINY, timesteps=3)
    if config.sheet is not None:
        config = config.replace(sheet=dataclasses.replace(config.sheet, n_clusters=200))
    model = make_firing(registry.build(config)).train()
    weights = connection_weights(model, registry.architecture(arch).region_layer_map)
    fisher = fisher_over_time(model, torch.randn(2, 3, 32, 32), torch.tensor([0, 3]), weights)
    assert fisher.shape == (3, 4) and torch.isfinite(fisher).all() and (fisher >= 0).all() and fisher.sum() > 0
    assert model.training and all(p.grad is None for p in model.parameters())  # left as it was


def test_fisher_weights_are_the_blocks_conv_weights_and_bad_input_is_refused():
    model = registry.build(registry.architecture_config("scornet").replace(**TINY))
    weights = connection_weights(model, {"V1": "V1", "IT": "IT"})
    assert [id(p) for p in weights["V1"]] == [id(model.V1.conv_input.weight), id(model.V1.conv1.weight)]
    with pytest.raises(ValueError, match="region V4: 'layer3.1' is not a module of SCornet"):
        connection_weights(model, {"V4": "layer3.1"})
    with pytest.raises(ValueError, match=r"expected images \[N, C, H, W\] and labels \[N\]"):
        fisher_over_time(model, torch.rand(2, 3, 32, 32), torch.zeros(3, dtype=torch.long), weights)


# ----------------------------------------------------------------------------- accuracy against T

@pytest.mark.parametrize("arch, expected", [("sresnet18", FEEDFORWARD_TIMESTEPS), ("spikformer", FEEDFORWARD_TIMESTEPS),
                                            ("tspikformer", FEEDFORWARD_TIMESTEPS), ("scornet", RECURRENT_TIMESTEPS),
                                            ("tscornet", RECURRENT_TIMESTEPS)])
def test_inference_timesteps_follow_the_architecture(arch, expected):
    config = registry.architecture_config(arch).replace(**TINY)
    if config.sheet is not None:
        config = config.replace(sheet=dataclasses.replace(config.sheet, n_clusters=200))
    assert inference_timesteps(registry.build(config)) == expected


def test_accuracy_by_timesteps_restores_the_models_own_t():
    model = make_firing(registry.build(registry.architecture_config("sresnet18").replace(**TINY, timesteps=3)))
    data = TensorDataset(torch.randn(6, 3, 32, 32), torch.arange(6) % 5)
    accuracy = accuracy_by_timesteps(model, data, (1, 2), batch_size=4, progress=False)
    assert set(accuracy) == {1, 2} and all(0 <= a <= 100 for a in accuracy.values())
    assert model.timesteps == 3


# ----------------------------------------------------------------------------- the temporal suite

#: Entropy at the tiny models' own T only; the Spikformer family's cost is left to the direct Fisher tests.
FAST = ["--suites", "temporal", "--entropy-timesteps", "4", "--fisher-images", "3", "--timestep-images", "4",
        "--no-progress"]


def test_temporal_suite_measures_fisher_and_accuracy_against_t(use_registry, tmp_path):
    out = tmp_path / "out"
    assert score.main(["--model", "tscornet.tiny", "--compare", "resnet18.tiny", "--out", str(out), *FAST]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["options"]["fisher_images"] == 3 and results["options"]["timestep_images"] == 4
    temporal, ann = (m["suites"]["temporal"] for m in results["models"])
    by_step = temporal["details"]["fisher_by_step"]
    curves = np.array(list(by_step.values()), dtype=float).T  # [T, regions]
    assert curves.shape == (4, 4) and list(by_step) == list(REGIONS)
    assert np.isfinite(curves).all() and (curves >= 0).all() and curves.sum() > 0
    assert [temporal["metrics"][f"fisher_{r}"] for r in REGIONS] == pytest.approx(curves[-1])
    assert temporal["details"]["fisher_images"] == 3 and temporal["details"]["timestep_images"] == 4
    assert temporal["details"]["accuracy_timesteps"] == list(RECURRENT_TIMESTEPS)
    assert all(0 <= temporal["metrics"][f"accuracy_T{t}"] <= 100 for t in RECURRENT_TIMESTEPS)
    assert ann["metrics"] == {}  # an ANN: nothing over time
    page = (out / "report.html").read_text()
    for figure in ("fisher.png", "accuracy_timesteps.png"):
        assert (out / "figures" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="figures/{figure}"' in page

def test_figures_draw_every_model_in_one_accuracy_plot_and_one_fisher_panel_each():
    records = []
    for name, timesteps in (("a", FEEDFORWARD_TIMESTEPS), ("b", RECURRENT_TIMESTEPS)):
        result = SuiteResult("temporal", details={"native_timesteps": timesteps[2], "fisher_images": 3,
                                                  keys.FISHER_BY_STEP: {r: [0.0, 1.0, 2.0] for r in REGIONS}})
        for t in timesteps:
            result.set(keys.ACCURACY_AT_TIMESTEPS[t], 10.0 * t)
        records.append({"name": name, "suites": {"temporal": result}})
    records.append({"name": "ann", "suites": {"temporal": SuiteResult("temporal")}})
    accuracy = figures.accuracy_timesteps(records)
    lines = accuracy.axes[0].get_lines()
    assert [list(line.get_xdata()) for line in lines] == [list(FEEDFORWARD_TIMESTEPS), list(RECURRENT_TIMESTEPS)]
    assert [line.get_label() for line in lines] == ["a (trained at T = 4)", "b (trained at T = 10)"]
    fisher = figures.fisher_curves(records)
    assert len(fisher.axes) == 2 and all(len(ax.get_lines()) == len(REGIONS) for ax in fisher.axes)
    assert figures.accuracy_timesteps(records[2:]) is None and figures.fisher_curves(records[2:]) is None


def test_image_counts_are_part_of_the_temporal_cache_key(use_registry):
    subject = score.load_subject("scornet.tiny", None, torch.device("cpu"))
    base = temporal.settings(subject, Options())
    assert base["fisher_images"] == 64 and base["timestep_images"] == 200
    assert temporal.settings(subject, Options(fisher_images=8)) != base
    assert temporal.settings(subject, Options(timestep_images=8)) != base


@pytest.mark.parametrize("flag", ["--fisher-images", "--timestep-images"])
def test_image_counts_below_one_exit_2_before_any_work(use_registry, tmp_path, capsys, flag):
    out = tmp_path / "out"
    assert score.main(["--model", "scornet.tiny", "--compare", "", "--out", str(out), *FAST, flag, "0"]) == 2
    assert f"{flag}: expected a positive integer, got 0" in capsys.readouterr().err and not out.exists()


def test_temporal_suite_marks_fisher_and_accuracy_unavailable_without_test_data(tiny_registry, tmp_path,
                                                                                monkeypatch):
    raw = yaml.safe_load(tiny_registry.read_text())
    raw["variants"] = {"scornet.tiny": {**raw["variants"]["scornet.tiny"], "data": "imagenet"}}  # no path given
    shutil.copy(tiny_registry.parent / "scornet.tiny.safetensors", tmp_path)
    path = tmp_path / "model_registry.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(registry, "REGISTRY_PATH", path)
    out = tmp_path / "out"
    assert score.main(["--model", "scornet.tiny", "--compare", "", "--out", str(out), *FAST]) == 0
    temporal = json.loads((out / "results.json").read_text())["models"][0]["suites"]["temporal"]
    assert 0 <= temporal["metrics"]["spike_entropy"] <= 1  # still measured on the gratings
    assert set(temporal["unavailable"]) == {*(f"fisher_{r}" for r in REGIONS),
                                            *(f"accuracy_T{t}" for t in RECURRENT_TIMESTEPS)}


# ----------------------------------------------------------------------------- report baselines

@pytest.mark.parametrize("arch", [*TWINS, "toponet_resnet18"])
def test_every_topographic_model_gets_an_accuracy_drop_against_its_twin(arch):
    baseline = report.BASELINES[arch]
    assert baseline == TWINS.get(arch, "resnet18")

    def record(name, accuracy, sem):
        result = SuiteResult("accuracy", metrics={keys.ACCURACY: accuracy}, sem={keys.ACCURACY: sem})
        return {"name": f"{name}.demo", "arch": name, "data": "fmnist", "timesteps": 4,
                "suites": {"accuracy": result}}

    results = {"suites": ["accuracy"], "models": [record(arch, 80.0, 0.3), record(baseline, 82.5, 0.4)]}
    titles, rows, _ = report.table_rows(results)
    drop = rows[0]["Δ accuracy vs baseline (pts)"]
    assert drop.value == pytest.approx(-2.5) and drop.sem == pytest.approx(0.5)
    assert rows[1]["Δ accuracy vs baseline (pts)"].value is None  # the twin itself has no baseline
