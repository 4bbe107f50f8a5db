"""The Brain-Score suite offline: registered benchmarks become unavailable rows, local
neural-data packs score through Brain-Score's own benchmark classes."""
import json
import time

import numpy as np
import pandas as pd
import pytest

import tdsnn
from harness import score
from harness.neural_pack import PackError, read_pack, write_pack
from harness.suites.brainscore import BENCHMARKS, check_benchmarks, region_of
from tdsnn.analysis import block_rates
from tdsnn.data import synthetic_images


def test_benchmark_list_is_registered_and_mapped_to_regions():
    check_benchmarks(list(BENCHMARKS))  # every TopoNets id exists in the installed brainscore_vision
    assert sum(r == "V1" for r in BENCHMARKS.values()) == 17 and len(BENCHMARKS) == 23
    assert region_of("MajajHong2015.IT-pls") == "IT"
    with pytest.raises(KeyError, match="unknown benchmark.*tong.coggan2024_fMRI.V1-rdm.*registered: "):
        check_benchmarks(["tong.coggan2024_fMRI.V1-rdm"])  # ids are case-sensitive


def test_unknown_benchmark_exits_2(use_registry, tmp_path, capsys):
    assert score.main(["--model", "resnet18.tiny", "--compare", "", "--suites", "brainscore", "--benchmarks",
                       "NoSuch.IT-pls", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "unknown benchmark(s) NoSuch.IT-pls; registered: " in capsys.readouterr().err


def test_offline_benchmarks_are_unavailable_rows_within_seconds(use_registry, tmp_path, capsys):
    start = time.perf_counter()
    assert score.main(["--model", "resnet18.tiny", "--compare", "", "--suites", "brainscore", "--out",
                       str(tmp_path), "--no-progress"]) == 0
    assert time.perf_counter() - start < 90
    result = json.loads((tmp_path / "results.json").read_text())["models"][0]["suites"]["brainscore"]
    assert result["metrics"] == {}
    assert set(result["unavailable"]) == set(BENCHMARKS) | {f"brainscore_{r}" for r in ("V1", "V2", "V4", "IT")}
    assert all("S3 unreachable" in result["unavailable"][b] for b in BENCHMARKS)
    table = (tmp_path / "table.md").read_text()
    assert "| resnet18.tiny | ANN | unavailable | unavailable | unavailable | unavailable |" in table
    assert "| MajajHong2015public.IT-pls | unavailable: S3 unreachable" in table
    assert score.main(["--model", "resnet18.tiny", "--compare", "", "--suites", "brainscore", "--out",
                       str(tmp_path / "strict"), "--strict", "--no-progress"]) == 1
    assert "S3 unreachable" in capsys.readouterr().err


def planted_pack(folder, name, shuffle, seed=0):
    """48 generated images; 20 IT neuroids = random readouts of the tiny model's IT rates
    plus noise, 4 repetitions; ``shuffle`` pairs the responses with the wrong images."""
    entry = tdsnn.resolve("resnet18.tiny")
    model = tdsnn.create_model("resnet18.tiny", pretrained=True).eval()
    images, labels = synthetic_images(48, 32, classes=4, seed=3)
    rates = block_rates(model, images, entry.preprocessing, ["layer4.1"], progress=False)["layer4.1"].numpy()
    rng = np.random.default_rng(seed)
    signal = rates @ rng.standard_normal((rates.shape[1], 20))
    signal = (signal - signal.mean(0)) / signal.std(0)
    if shuffle:
        signal = signal[rng.permutation(len(signal))]
    responses = signal[None] + 0.5 * rng.standard_normal((4, *signal.shape))
    stimuli = pd.DataFrame({"stimulus_id": [f"{name}_{i:02d}" for i in range(48)],
                            "object_name": [f"class{int(c)}" for c in labels]})
    return write_pack(folder / name, name, "IT", images, stimuli, responses, subjects=["a"] * 10 + ["b"] * 10)


def test_planted_pack_scores_clearly_above_its_shuffled_control(use_registry, tmp_path):
    planted = planted_pack(tmp_path, "planted", shuffle=False)
    control = planted_pack(tmp_path, "control", shuffle=True)
    assert score.main(["--model", "resnet18.tiny", "--compare", "", "--suites", "brainscore", "--neural-data",
                       str(planted), str(control), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    result = json.loads((tmp_path / "out" / "results.json").read_text())["models"][0]["suites"]["brainscore"]
    pls = {pack: next(v for k, v in result["details"]["scores"].items() if f".{pack}-" in k and k.endswith("-pls"))
           for pack in ("planted", "control")}
    assert pls["planted"]["raw"] > 0.5 and pls["control"]["raw"] < 0.2
    assert pls["planted"]["ceiled"] > pls["control"]["ceiled"] + 0.3
    assert any(k.endswith("IT-rdm") for k in result["metrics"])  # subjects enable the RDM benchmark
    assert "brainscore_IT" not in result["metrics"]  # local packs are not averaged into the public region score
    table = (tmp_path / "out" / "table.md").read_text()
    assert "local.planted-" in table and "local.control-" in table


def test_bad_packs_are_clear_errors(tmp_path, use_registry, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackError, match="missing pack.json"):
        read_pack(tmp_path / "empty")
    pack = planted_pack(tmp_path, "p", shuffle=False)
    (pack / "images" / "p_00.png").unlink()
    with pytest.raises(PackError, match="1 stimulus files are missing"):
        read_pack(pack)
    meta = json.loads((pack / "pack.json").read_text())
    (pack / "pack.json").write_text(json.dumps({**meta, "region": "MT"}))
    with pytest.raises(PackError, match="region 'MT' is not one of V1, V2, V4, IT"):
        read_pack(pack)
    assert score.main(["--model", "resnet18.tiny", "--compare", "", "--suites", "brainscore", "--neural-data",
                       str(pack), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "region 'MT'" in capsys.readouterr().err
