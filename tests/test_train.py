import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tdsnn.checkpoint import read_checkpoint, save_model, sha256_file
from tdsnn.config import BLOCKS
from tdsnn.registry import build
from tdsnn.training.cli import main
from tdsnn.training.config import TrainConfig, parse_args
from tdsnn.training.pipeline import Run, aux_stage, swap_stage, train_stage
from tdsnn.training.runtime import Runtime
from tdsnn.training.state import TrainingState

from tiny import make_firing

TINY = ["--width", "0.25", "--stem", "small", "--input-size", "16", "--batch-size", "16", "--workers", "0",
        "--lr", "0.002", "--warmup-epochs", "0.5"]
#: The same tiny recipe as options, for stage functions called directly.
TINY_OPTIONS = dict(input_size=16, batch_size=16, workers=0, lr=0.002, warmup_epochs=0.5)
TINY_MODEL = {"width": 0.25, "stem": "small", "timesteps": 2}
FEW_SHEET_CLUSTERS = {"sheet": {"n_clusters": 200}}  # sheets build in seconds, not half a minute


def run(out, *args):
    return main(["--data", "synthetic:64", "--out", str(out), *TINY, *args])


def weights(path):
    return load_file(str(path))


def newest_checkpoint(stage_dir):
    return TrainingState(stage_dir).newest_model()


def stage_run(tmp_path, model, **options):
    """A ``Run`` on one CPU process, as the pipeline builds it, for calling one stage alone."""
    model_options = {**TINY_MODEL, **options.pop("model_options", {})}
    cfg = TrainConfig(model=model, data="synthetic:32", out=str(tmp_path), model_options=model_options,
                      **{**TINY_OPTIONS, **options}).resolved()
    return Run.prepare(cfg, Runtime(0, 1, torch.device("cpu")))


def test_config_layers(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("model: sresnet18\nepochs: 7\nlr: 0.1\nmodel_options: {timesteps: 3}\n")
    cfg, resume = parse_args(["--config", str(config_file), "--lr", "0.5", "--alpha", "10", "--resume"])
    assert (cfg.model, cfg.epochs, cfg.lr, resume) == ("sresnet18", 7, 0.5, True)
    assert cfg.model_options == {"timesteps": 3, "stc": {"alpha": 10.0}}


def test_tsresnet18_pipeline_runs_every_stage_and_skips_done_ones(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--model", "tsresnet18", "--epochs", "1", "--timesteps", "2", "--swap-windows", "20",
            "--swap-steps", "20", "--clusters", "2"]
    assert run(out, *args) == 0
    for stage in ("aux", "swap", "train"):
        assert (out / stage / "stage.json").exists(), stage
    swap = json.loads((out / "swap" / "stage.json").read_text())
    assert set(swap["layers"]) == {"layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1",
                                   "layer4.0", "layer4.1"}
    final = weights(out / "train" / "final.safetensors")
    swapped = weights(out / "swap" / "positions.safetensors")
    for block, pos in swapped.items():
        assert torch.equal(final[f"sheets.{block.replace('.', '_')}.positions"], pos)
    metrics = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    assert {"train_ce", "train_stc_rate", "train_stc_sync", "train_rate", "val_acc"} <= set(metrics[0])
    capsys.readouterr()
    assert run(out, *args) == 0  # everything is done: all stages skipped
    assert capsys.readouterr().out.count("skipped") == 3
    assert run(out, *args[:-2], "--clusters", "3") == 2  # a different config is refused
    assert (out / "config.yaml").exists()

    reuse = tmp_path / "reuse"  # a trained SResNet18 serves as the auxiliary SNN
    aux = out / "aux" / "final.safetensors"
    assert run(reuse, *args, "--aux-weights", str(aux), "--max-steps", "1") == 0
    assert json.loads((reuse / "aux" / "stage.json").read_text())["path"] == str(aux.resolve())
    assert not (reuse / "aux" / "final.safetensors").exists()
    assert torch.equal(weights(reuse / "swap" / "positions.safetensors")["layer2.0"], swapped["layer2.0"])
    bad = tmp_path / "bad"
    assert run(bad, *args, "--aux-weights", str(out / "train" / "final.safetensors")) == 2
    assert "not an sresnet18" in capsys.readouterr().err and not bad.exists()  # refused before writing


def test_aux_stage_trains_an_sresnet18_or_records_given_weights(tmp_path):
    run_ = stage_run(tmp_path / "run", "tsresnet18", epochs=1)
    record = aux_stage(run_, tmp_path / "aux")
    assert record["finished"] and record["epoch"] == 1 and record["step"] == 2  # 32 images, batch 16
    config, _ = read_checkpoint(record["path"], record["sha256"])
    assert config.arch == "sresnet18" and config.sheet is None and config.stc is None
    assert config.timesteps == 2 and config.width == 0.25

    given = stage_run(tmp_path / "run2", "tsresnet18", aux_weights=record["path"])
    assert aux_stage(given, tmp_path / "aux2") == {"path": record["path"], "sha256": record["sha256"]}
    assert not (tmp_path / "aux2" / "final.safetensors").exists()


def test_swap_stage_permutes_every_sheet_on_the_aux_rates(tmp_path):
    run_ = stage_run(tmp_path / "run", "tsresnet18", swap_windows=5, swap_steps=5, model_options=FEW_SHEET_CLUSTERS)
    aux_path = tmp_path / "aux.safetensors"
    sha = save_model(make_firing(build(run_.aux_config)), aux_path)
    record = swap_stage(run_, tmp_path, {"path": str(aux_path), "sha256": sha})
    assert record["sha256"] == sha256_file(tmp_path / "positions.safetensors")
    assert set(record["layers"]) == set(BLOCKS)
    positions = weights(tmp_path / "positions.safetensors")
    sheets = build(run_.model_config)
    for block in BLOCKS:
        before = sheets.sheet(block).positions
        after = positions[block]
        assert after.shape == before.shape
        assert torch.equal(torch.unique(after, dim=0), torch.unique(before, dim=0)), block  # a permutation
    assert sum(r["accepted"] for r in record["layers"].values()) > 0


def test_train_stage_puts_the_positions_on_the_sheets(tmp_path):
    run_ = stage_run(tmp_path / "run", "tsresnet18", epochs=1, model_options={**FEW_SHEET_CLUSTERS,
                                                                               "stc": {"clusters_per_layer": 2}})
    sheets = build(run_.model_config)
    positions = {b: sheets.sheet(b).positions.flip(0) for b in BLOCKS}
    record = train_stage(run_, tmp_path / "train", positions)
    assert record["finished"] and record["sha256"] == sha256_file(tmp_path / "train" / "final.safetensors")
    final = weights(tmp_path / "train" / "final.safetensors")
    for block, pos in positions.items():
        assert torch.equal(final[f"sheets.{block.replace('.', '_')}.positions"], pos)
    assert [row["epoch"] for row in record["metrics"]] == [1] and "train_stc_rate" in record["metrics"][0]


@pytest.mark.parametrize("model", ["sresnet18", "toponet_resnet18"])
def test_resume_is_bit_exact(tmp_path, model):
    args = ["--model", model, "--epochs", "2"] + (["--timesteps", "2"] if model == "sresnet18" else [])
    assert run(tmp_path / "straight", *args, "--max-steps", "6") == 0
    assert run(tmp_path / "split", *args, "--max-steps", "3") == 0  # stops mid-epoch (4 steps per epoch)
    assert not (tmp_path / "split" / "train" / "stage.json").exists()
    assert run(tmp_path / "split", *args, "--max-steps", "6") == 2  # refuses to overwrite without --resume
    assert run(tmp_path / "split", *args, "--max-steps", "6", "--resume") == 0
    a = weights(newest_checkpoint(tmp_path / "straight" / "train"))
    b = weights(newest_checkpoint(tmp_path / "split" / "train"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_corrupt_checkpoint_is_refused(tmp_path, capsys):
    args = ["--model", "resnet18", "--epochs", "2", "--max-steps", "2"]
    assert run(tmp_path, *args) == 0
    [state] = (tmp_path / "train").glob("ckpt-*.state.safetensors")
    state.write_bytes(state.read_bytes()[:-8] + b"corrupt!")
    assert run(tmp_path, "--model", "resnet18", "--epochs", "2", "--resume") == 2
    assert "no complete checkpoint" in capsys.readouterr().err and state.exists()


def test_resume_accepts_a_checkpoint_from_before_a_new_model_option(tmp_path):
    args = ["--model", "resnet18", "--epochs", "2"]
    assert run(tmp_path, *args, "--max-steps", "2") == 0
    [record_path] = (tmp_path / "train").glob("ckpt-*.json")
    record = json.loads(record_path.read_text())
    del record["config"]["model_config"]["blurpool"]  # an option added after the run started, at its default
    record_path.write_text(json.dumps(record))
    assert run(tmp_path, *args, "--max-steps", "3", "--resume") == 0
    [record_path] = (tmp_path / "train").glob("ckpt-*.json")
    record = json.loads(record_path.read_text())
    record["config"]["model_config"]["width"] = 0.5  # a real difference is still refused
    record_path.write_text(json.dumps(record))
    assert run(tmp_path, *args, "--max-steps", "4", "--resume") == 2


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path, capsys):
    code = run(tmp_path, "--model", "sresnet18", "--epochs", "3", "--timesteps", "2", "--lr", "1e20",
               "--checkpoint-minutes", "0")
    assert code == 3
    err = capsys.readouterr().err
    assert "non-finite" in err or "loss became" in err
    kept = int(re.search(r"last checkpoint \(step (\d+), finite\)", err).group(1))
    [record_path] = (tmp_path / "train").glob("ckpt-*.json")
    assert kept >= 1 and json.loads(record_path.read_text())["progress"]["step"] == kept
    assert (tmp_path / "train" / "stopped.json").exists()
    assert not (tmp_path / "train" / "stage.json").exists()


def test_missing_data_path_is_a_clear_error(tmp_path, capsys):
    assert main(["--data", "imagenet:/nonexistent", "--out", str(tmp_path)]) == 2
    assert "/nonexistent/train" in capsys.readouterr().err


def test_ddp_two_cpu_ranks_stay_identical(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --standalone: a rendezvous on a free local port, so parallel test runs never collide
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tdsnn.train", "--model", "tsresnet18", "--data", "synthetic:64", "--out", str(out), *TINY,
           "--batch-size", "8", "--epochs", "1", "--aux-epochs", "1", "--timesteps", "2", "--swap-windows", "10",
           "--swap-steps", "10", "--clusters", "2"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "train" / "stage.json").read_text())
    prints = record["rank_fingerprints"]
    assert len(prints) == 2 and prints[0] == prints[1] and prints[0] != 0
    assert not list(Path(out).rglob("*.tmp"))
