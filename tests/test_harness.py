"""harness/score.py on tiny registered models and generated data, offline."""
import json
import os

import numpy as np
import pandas as pd
import pytest
import yaml

from harness import score

MODELS = ["--model", "tsresnet18.tiny", "--compare", "sresnet18.tiny,resnet18.tiny,toponet_resnet18.tiny"]
FAST = ["--limit", "16", "--robustness-images", "8", "--category-images", "6", "--entropy-timesteps", "1,2",
        "--pgd-steps", "2", "--no-progress"]


def run(out, *args):
    return score.main([*MODELS, "--out", str(out), *FAST, *args])


@pytest.fixture(scope="module")
def scored(tiny_registry, tmp_path_factory):
    """One run of the four tiny models through every suite but Brain-Score."""
    from tdsnn import registry
    out = tmp_path_factory.mktemp("scored")
    saved = registry.REGISTRY_PATH
    registry.REGISTRY_PATH = tiny_registry
    try:
        assert run(out, "--suites", "accuracy,topography,robustness,temporal") == 0
    finally:
        registry.REGISTRY_PATH = saved
    return out


@pytest.mark.parametrize("args, message", [
    (["--model", "nosuchnet"], "unknown model 'nosuchnet'; registered models: resnet18"),
    (["--compare", "resnet18.tiny,bad.tag"], "unknown model 'bad.tag'"),
    (["--suites", "accuracy,vibes"], "unknown suite(s) vibes; valid: accuracy, topography"),
    (["--data", "mnist"], "--data: unknown dataset 'mnist'"),
    (["--weights", "/no/such.safetensors"], "--weights: no such file"),
    (["--categories", "/no/such/dir"], "--categories: /no/such/dir is not a directory"),
    (["--neural-data", "/no/pack"], "--neural-data: /no/pack is not a directory"),
    (["--entropy-timesteps", "1,x"], "--entropy-timesteps: expected comma-separated integers"),
])
def test_bad_input_exits_2_and_names_what_is_valid(use_registry, tmp_path, capsys, args, message):
    assert score.main(["--model", "resnet18.tiny", "--compare", "", "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


def test_outputs_hold_every_model_and_suite(scored):
    results = json.loads((scored / "results.json").read_text())
    names = [m["name"] for m in results["models"]]
    assert names == ["tsresnet18.tiny", "sresnet18.tiny", "resnet18.tiny", "toponet_resnet18.tiny"]
    assert set(results["versions"]) >= {"torch", "spikingjelly", "brainscore-vision", "tdsnn"}
    assert len(results["code_sha256"]) == 64
    for model in results["models"]:
        assert len(model["sha256"]) == 64
        suites = model["suites"]
        assert set(suites) == {"accuracy", "topography", "robustness", "temporal"}
        assert all("arrays" not in r for r in suites.values())  # per-unit data stays in the cache
        assert 0 <= suites["accuracy"]["metrics"]["accuracy"] <= 100 and suites["accuracy"]["details"]["images"] == 16
        topo = suites["topography"]["metrics"]
        assert set(topo) >= {"v1_orientation_smoothness", "v1_orientation_smoothness_chance", "v1_sf_smoothness",
                             "v1_color_smoothness", "it_category_smoothness", "effective_dimensionality_IT"}
        assert suites["topography"]["details"]["category_stimuli"] == 6 * 4
        robust = suites["robustness"]["metrics"]
        assert all(0 <= robust[k] <= 100 for k in ("clean", "noise", "fgsm", "pgd", "mask"))
        assert suites["robustness"]["details"]["config"]["pgd_steps"] == 2  # strengths are recorded
        entropy = suites["temporal"]["metrics"]
        if model["timesteps"]:
            assert 0 <= entropy["spike_entropy"] <= 1
            assert set(suites["temporal"]["details"]["entropy_by_timesteps"]["IT"]) == {"1", "2", "4"}
        else:
            assert entropy == {}  # an ANN has no spikes


def test_table_marks_missing_values_and_labels_reported_ones(scored):
    table = (scored / "table.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert {"tsresnet18.tiny", "sresnet18.tiny", "resnet18.tiny", "toponet_resnet18.tiny"} <= set(rows)
    assert rows["resnet18.tiny"].rstrip(" |").endswith("–")  # ANN: no spike entropy
    assert "Reference: reported (TDSNN paper, ImageNet)" in table and "0.7127" in table
    csv = pd.read_csv(scored / "table.csv")
    assert set(csv["source"]) == {"measured", "reported (TDSNN paper, ImageNet)"}
    measured = csv[csv["source"] == "measured"].set_index("model")
    results = json.loads((scored / "results.json").read_text())
    acc = {m["name"]: m["suites"]["accuracy"]["metrics"]["accuracy"] for m in results["models"]}
    drop = measured.loc["tsresnet18.tiny", "Δ accuracy vs baseline (pts)"]
    assert float(drop) == pytest.approx(acc["tsresnet18.tiny"] - acc["sresnet18.tiny"])
    tex = (scored / "table.tex").read_text()
    assert "\\begin{table}" in tex and "accuracy (\\%)" in tex and "toponet\\_resnet18.tiny" in tex


def test_figures_are_written_and_shown_in_the_report(scored):
    figures = sorted(p.name for p in (scored / "figures").glob("*.png"))
    assert figures == sorted(["preference_maps.png", "smoothness_curves.png", "smoothness.png",
                              "correlation_distance.png", "t_maps.png", "robustness.png", "entropy.png"])
    for name in figures:
        assert (scored / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (scored / "report.html").read_text()
    assert all(f'src="figures/{name}"' in page for name in figures)
    assert "tsresnet18.tiny" in page and "reported" in page


def test_rerun_recomputes_nothing_and_changed_options_recompute_their_suite(scored, use_registry):
    assert run(scored, "--suites", "accuracy,topography,robustness,temporal") == 0
    results = json.loads((scored / "results.json").read_text())
    assert all(r["cached"] for m in results["models"] for r in m["suites"].values())
    assert run(scored, "--suites", "accuracy,temporal", "--limit", "8") == 0
    results = json.loads((scored / "results.json").read_text())
    for model in results["models"]:
        assert not model["suites"]["accuracy"]["cached"] and model["suites"]["temporal"]["cached"]
        assert model["suites"]["accuracy"]["details"]["images"] == 8
    broken = next((scored / "cache").glob("resnet18.tiny-*/temporal-*.json"))
    broken.write_text('{"metrics": {')  # e.g. a disk that filled up mid-write
    assert run(scored, "--suites", "temporal") == 0
    results = json.loads((scored / "results.json").read_text())
    assert [m["suites"]["temporal"]["cached"] for m in results["models"]] == [True, True, False, True]


def edited_registry(tiny_registry, tmp_path, monkeypatch, edit):
    """A copy of the tiny registry (weights paths made absolute) changed by ``edit(raw)``, in use."""
    from tdsnn import registry
    raw = yaml.safe_load(tiny_registry.read_text())
    for variant in raw["variants"].values():
        variant["weights"]["path"] = str(tiny_registry.parent / variant["weights"]["path"])
    edit(raw)
    path = tmp_path / "model_registry.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(registry, "REGISTRY_PATH", path)


def test_sha256_mismatch_is_refused(tiny_registry, tmp_path, monkeypatch, capsys):
    edited_registry(tiny_registry, tmp_path, monkeypatch,
                    lambda raw: raw["variants"]["resnet18.tiny"]["weights"].update(sha256="0" * 64))
    assert score.main(["--model", "resnet18.tiny", "--compare", "", "--suites", "accuracy", "--out",
                       str(tmp_path / "out"), "--no-progress"]) == 1
    assert "sha256" in capsys.readouterr().err


def test_offline_hub_weights_give_an_unavailable_row(tiny_registry, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    def add_hub_variant(raw):
        raw["variants"]["toponet_resnet18.hubtest"] = {
            "config": raw["variants"]["toponet_resnet18.tiny"]["config"], "data": "synthetic",
            "weights": {"hub": {"repo": "murtylab/topo-resnet18-imagenet", "filename": "all_topo_tau_10.0.pt"}}}

    edited_registry(tiny_registry, tmp_path, monkeypatch, add_hub_variant)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    args = ["--model", "toponet_resnet18.hubtest", "--compare", "resnet18.tiny", "--suites", "accuracy",
            "--limit", "8", "--no-progress"]
    assert score.main([*args, "--out", str(tmp_path / "out")]) == 0
    table = (tmp_path / "out" / "table.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| toponet_resnet18.hubtest"))
    assert "unavailable" in row
    assert "weights unavailable offline: hf://murtylab/topo-resnet18-imagenet/all_topo_tau_10.0.pt" in table
    assert score.main([*args, "--out", str(tmp_path / "strict"), "--strict"]) == 1
    assert "weights unavailable offline" in capsys.readouterr().err


def test_categories_folder_drives_it_selectivity(use_registry, tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for category in ("faces", "places", "words"):
        (tmp_path / "cats" / category).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                tmp_path / "cats" / category / f"{i}.png")
    assert score.main(["--model", "tsresnet18.tiny", "--compare", "", "--suites", "topography", "--categories",
                       str(tmp_path / "cats"), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    details = json.loads((tmp_path / "out" / "results.json").read_text())["models"][0]["suites"]["topography"]["details"]
    assert details["categories"] == ["faces", "places", "words"] and details["category_stimuli"] == 12


def test_missing_evaluation_data_is_an_unavailable_cell(use_registry, tmp_path):
    assert score.main(["--model", "resnet18.tiny", "--compare", "", "--suites", "accuracy", "--data",
                       "imagenet-val:/no/such/val", "--out", str(tmp_path), "--no-progress"]) == 0
    table = (tmp_path / "table.md").read_text()
    assert "| resnet18.tiny | ANN | unavailable |" in table
    assert "expected an ImageFolder directory /no/such/val" in table
    assert os.path.exists(tmp_path / "report.html")


@pytest.mark.parametrize("suite_name", ["accuracy", "topography", "robustness", "temporal"])
def test_suites_leave_the_model_untouched(use_registry, suite_name):
    import torch
    from harness.suites import Options, suite
    subject = score.load_subject("sresnet18.tiny", None, torch.device("cpu"))
    before = {k: v.clone() for k, v in subject.model.state_dict().items()}
    options = Options(limit=8, robustness_images=8, category_images=3, entropy_timesteps=(1,), progress=False)
    suite(suite_name).run(subject, options)
    after = subject.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not subject.model.training and subject.model.timesteps == 4


def test_brainscore_offline_rows_strict_and_unknown_ids_through_the_cli(use_registry, tmp_path, capsys):
    args = ["--model", "resnet18.tiny", "--compare", "", "--suites", "brainscore", "--no-progress"]
    assert score.main([*args, "--benchmarks", "NoSuch.IT-pls", "--out", str(tmp_path / "bad")]) == 2
    assert "unknown benchmark(s) NoSuch.IT-pls; registered: " in capsys.readouterr().err
    assert score.main([*args, "--out", str(tmp_path / "offline")]) == 0
    table = (tmp_path / "offline" / "table.md").read_text()
    assert "| resnet18.tiny | ANN | unavailable | unavailable | unavailable | unavailable |" in table
    assert "| MajajHong2015public.IT-pls | unavailable: S3 unreachable" in table
    assert score.main([*args, "--out", str(tmp_path / "strict"), "--strict"]) == 1
    assert "S3 unreachable" in capsys.readouterr().err
