"""harness/score.py on tiny registered models and generated data, offline."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from harness import cache, figures, report, score
from harness.suites import Cell, ResultShapeError, SuiteResult, keys
from harness.suites.common import data_settings, folder_version
from tdsnn.analysis.robustness import PERTURBATIONS

MODELS = ["--model", "tsresnet18.tiny", "--compare", "sresnet18.tiny,resnet18.tiny,toponet_resnet18.tiny"]
FAST = ["--limit", "16", "--robustness-images", "8", "--category-images", "6", "--entropy-timesteps", "1,2",
        "--fisher-images", "4", "--timestep-images", "8", "--pgd-steps", "2", "--no-progress"]


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
        assert all(0 <= robust[keys.ROBUST_ACCURACY[p]] <= 100 for p in PERTURBATIONS)
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
                              "correlation_distance.png", "t_maps.png", "robustness.png", "entropy.png",
                              "fisher.png", "accuracy_timesteps.png"])
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


@pytest.mark.parametrize("content", ["[]", '{"suite": "temporal", "metrics": []}', '{"metrics": {}}',
                                     '{"suite": "temporal", "metrics": {"spike_entropy_V9": 0.5}}',
                                     '{"suite": "accuracy", "metrics": {}, "seconds": 1}'])
def test_cache_file_of_the_wrong_shape_is_computed_again(scored, use_registry, content):
    cached = next((scored / "cache").glob("resnet18.tiny-*/temporal-*.json"))
    cached.write_text(content)  # valid JSON, but no temporal result
    assert run(scored, "--suites", "temporal") == 0
    results = json.loads((scored / "results.json").read_text())
    assert [m["suites"]["temporal"]["cached"] for m in results["models"]] == [True, True, False, True]
    assert SuiteResult.from_json(json.loads(cached.read_text())).suite == "temporal"  # replaced by a result


def edited_registry(tiny_registry, tmp_path, monkeypatch, edit, name="registry"):
    """A copy of the tiny registry (and its weights files) in ``tmp_path/name``, changed by
    ``edit(raw)``, in use."""
    from tdsnn import registry
    folder = tmp_path / name
    folder.mkdir()
    raw = yaml.safe_load(tiny_registry.read_text())
    for variant in raw["variants"].values():
        shutil.copy(tiny_registry.parent / variant["weights"]["path"], folder / variant["weights"]["path"])
    edit(raw)
    path = folder / "model_registry.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(registry, "REGISTRY_PATH", path)


def test_changed_region_map_recomputes(tiny_registry, tmp_path, monkeypatch):
    args = ["--model", "sresnet18.tiny", "--compare", "", "--suites", "temporal", "--entropy-timesteps", "1",
            "--fisher-images", "2", "--timestep-images", "4",
            "--out", str(tmp_path / "out"), "--no-progress"]

    def blocks():
        record = json.loads((tmp_path / "out" / "results.json").read_text())["models"][0]["suites"]["temporal"]
        return record["cached"], record["details"]["blocks"]["V1"]

    edited_registry(tiny_registry, tmp_path, monkeypatch, lambda raw: None)
    assert score.main(args) == 0 and score.main(args) == 0
    cached, v1 = blocks()
    assert cached and v1 != "layer2.1"
    edited_registry(tiny_registry, tmp_path, monkeypatch,
                    lambda raw: raw["variants"]["sresnet18.tiny"].update(region_layer_map={"V1": "layer2.1"}),
                    name="edited")
    assert score.main(args) == 0
    assert blocks() == (False, "layer2.1")  # same weights and settings, other layers: computed again


def test_cache_key_covers_every_project_package():
    root = Path(score.__file__).resolve().parent.parent
    packages = {p.parent.name for p in root.glob("*/__init__.py") if p.parent.name != "tests"}
    assert set(cache.PROJECT_PACKAGES) == packages


def test_data_version_follows_the_files(tmp_path, use_registry):
    folder = tmp_path / "data" / "val" / "a"
    folder.mkdir(parents=True)
    assert folder_version(tmp_path / "nowhere") == "missing"
    (folder / "0.png").write_bytes(b"x")
    first = folder_version(tmp_path / "data")
    (folder / "1.png").write_bytes(b"y")
    second = folder_version(tmp_path / "data")
    (folder / "1.png").write_bytes(b"yy")
    assert len({first, second, folder_version(tmp_path / "data")}) == 3
    from harness.suites import Options
    subject = score.load_subject("resnet18.tiny", None, torch.device("cpu"))
    assert data_settings(subject, Options()) == {"data": "synthetic", "data_version": "generated"}
    spec = f"folder:{tmp_path / 'data'}"
    assert data_settings(subject, Options(data=spec)) == {"data": spec,
                                                          "data_version": folder_version(tmp_path / "data" / "val")}


def test_suite_results_refuse_misspelled_keys():
    result = SuiteResult("topography")
    result.set(keys.V1_SMOOTHNESS["orientation"], 0.5)
    with pytest.raises(KeyError, match="'v1_orientation_smothness' is not a metric of the topography suite"):
        result.set("v1_orientation_smothness", 0.5)
    with pytest.raises(KeyError, match="not a metric"):
        result.cell("accuracy")  # another suite's key
    with pytest.raises(KeyError):
        keys.V1_SMOOTHNESS["orientaton"]
    with pytest.raises(KeyError, match="not an array"):
        result.set_array("v1_positons", [])
    with pytest.raises(KeyError, match="unknown suite"):
        SuiteResult("topograpy")
    for suite_name, metric_keys in keys.METRICS.items():
        assert len(set(metric_keys)) == len(metric_keys) and suite_name in keys.SUITES
    bench = SuiteResult("brainscore", run_keys=("MajajHong2015public.IT-pls",))
    bench.set("MajajHong2015public.IT-pls", 0.4)  # a per-run key the result declares
    with pytest.raises(KeyError):
        bench.set("MajajHong2015public.V4-pls", 0.4)


def test_unavailable_reasons_are_fields_of_each_metric():
    result = SuiteResult("topography")
    result.set(keys.V1_SMOOTHNESS["orientation"], 0.5, sem=0.02)
    result.mark_unavailable("no category images", keys.CATEGORY_METRICS)
    assert result.cell(keys.EFFECTIVE_DIMENSIONALITY["IT"]) == Cell(reason="no category images")
    assert result.cell(keys.V1_SMOOTHNESS["orientation"]) == Cell(0.5, 0.02)
    assert result.cell(keys.V1_SMOOTHNESS["sf"]) == Cell()
    assert result.reasons() == {"no category images": list(keys.CATEGORY_METRICS)}
    again = SuiteResult.from_json(json.loads(json.dumps(result.to_json())))
    assert (again.metrics, again.sem, again.unavailable) == (result.metrics, result.sem, result.unavailable)
    for bad in ([], {"suite": "topography", "sem": {"v1_sf_smoothness": 0.1}}, {"suite": 3},
                {"suite": "topography", "unavailable": {"v1_sf_smoothness": 1}}):
        with pytest.raises(ResultShapeError):
            SuiteResult.from_json(bad)


def test_tables_show_mean_and_sem_where_a_spread_was_measured():
    assert report._fmt(Cell(0.5634, 0.0123)) == "0.563 ± 0.012"
    assert report._fmt(Cell(0.5634)) == "0.563"
    assert report._fmt(Cell(reason="no data")) == "unavailable"
    assert report._fmt(Cell(float("nan"), 0.1)) == "–"
    rows = report._csv_rows(["model", "V1"], [{"model": "a", "V1": Cell(0.5, 0.1)}, {"model": "b", "V1": Cell(0.4)}])
    assert rows == [{"model": "a", "V1": 0.5, "V1 SEM": 0.1}, {"model": "b", "V1": 0.4, "V1 SEM": None}]


def test_t_map_colour_range_survives_nan_and_zero_maps():
    assert figures.color_limit(np.full((3, 5), np.nan)) == 1.0  # np.nanpercentile(...) or 1.0 gave nan
    assert figures.color_limit(np.zeros((3, 5))) == 1.0
    assert figures.color_limit(np.array([[np.nan, -2.0, 1.0]]), percentile=100) == 2.0
    result = SuiteResult("topography", details={"categories": ["a", "b"]},
                         arrays={keys.IT_T_MAPS: np.full((2, 4), np.nan), keys.IT_POSITIONS: np.zeros((4, 2))})
    fig = figures.t_maps([{"name": "m", "suites": {"topography": result}}])
    assert fig is not None
    figures.plt.close(fig)


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
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    details = results["models"][0]["suites"]["topography"]["details"]
    assert details["categories"] == ["faces", "places", "words"] and details["category_stimuli"] == 12


def test_evaluation_data_missing_here_is_an_unavailable_cell(tiny_registry, tmp_path, monkeypatch):
    edited_registry(tiny_registry, tmp_path, monkeypatch,
                    lambda raw: raw["variants"]["resnet18.tiny"].update(data="imagenet"))
    assert score.main(["--model", "resnet18.tiny", "--compare", "", "--suites", "accuracy,robustness",
                       "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| resnet18.tiny | ANN | unavailable |" in table
    reasons = [line for line in table.splitlines() if "no ImageNet path given" in line]
    assert len(reasons) == 1 and "accuracy (%)" in reasons[0] and "masking (%)" in reasons[0]  # one line per reason
    assert os.path.exists(tmp_path / "out" / "report.html")


@pytest.mark.parametrize("suite_name", ["accuracy", "topography", "robustness", "temporal"])
def test_suites_leave_the_model_untouched(use_registry, suite_name):
    from harness.suites import Options, suite
    subject = score.load_subject("sresnet18.tiny", None, torch.device("cpu"))
    before = {k: v.clone() for k, v in subject.model.state_dict().items()}
    options = Options(limit=8, robustness_images=8, category_images=3, entropy_timesteps=(1,), fisher_images=2,
                      timestep_images=4, progress=False)
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
    assert "| MajajHong2015public.IT-pls | unavailable [1] |" in table and "unavailable: " not in table
    notes = [line for line in table.splitlines() if line.startswith("- [1] ")]
    assert len(notes) == 1 and notes[0].startswith("- [1] S3 unreachable (")  # the reason, once, under the table
    assert score.main([*args, "--out", str(tmp_path / "strict"), "--strict"]) == 1
    assert "S3 unreachable" in capsys.readouterr().err
