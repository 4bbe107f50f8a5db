"""Bad input and interruptions of tdsnn-train: each is refused with status 2 and a message
before anything is written, or survived without losing what was already trained."""
import io
import json
import os
import re

import pytest
import torch
import torch.distributed as dist
import yaml
from PIL import Image
from safetensors.torch import load_file, save_file

import tdsnn
from tdsnn.checkpoint import CheckpointError, read_checkpoint, save_model
from tdsnn.data import DataError, DataSpec, build_dataset
from tdsnn.training import loop, runtime
from tdsnn.training.cli import main
from tdsnn.training.config import parse_args
from tdsnn.training.objective import Objective

from tiny import TINY as TINY_MODEL

TINY = ["--width", "0.25", "--stem", "small", "--input-size", "16", "--batch-size", "16", "--workers", "0",
        "--lr", "0.002", "--warmup-epochs", "0.5", "--model", "resnet18", "--epochs", "1"]


def train(out, *args, data="synthetic:64"):
    return main(["--data", data, "--out", str(out), *TINY, *args])


def files(folder):
    """Every file under ``folder`` with its bytes (what a refused run must leave untouched)."""
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def model_checkpoints(stage_dir):
    return [p for p in stage_dir.glob("*.safetensors") if not p.name.endswith(".state.safetensors")
            and p.name != "final.safetensors"]


# ----------------------------------------------------------------------------- options

@pytest.mark.parametrize("flag, value", [
    ("--epochs", "-1"), ("--epochs", "0"), ("--epochs", "two"), ("--epochs", "2.5"), ("--batch-size", "0"),
    ("--lr", "0"), ("--lr", "-0.001"), ("--lr", "nan"), ("--lr", "inf"), ("--weight-decay", "-0.1"),
    ("--warmup-epochs", "-1"), ("--workers", "-1"), ("--max-steps", "0"), ("--input-size", "0"),
    ("--timesteps", "0"), ("--width", "0"), ("--clusters", "0"), ("--stem", "tiny"), ("--device", "gpu"),
    ("--aux-epochs", "-2"), ("--swap-windows", "0"), ("--checkpoint-minutes", "-1"),
])
def test_out_of_range_flags_are_refused_before_anything_is_written(tmp_path, capsys, flag, value):
    out = tmp_path / "run"
    assert train(out, flag, value) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tdsnn-train: {flag}: expected ") and repr(value) in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("text, message", [
    ("epochs: -1\n", "c.yaml: epochs: expected an integer >= 1, got -1"),
    ('epochs: "two"\n', "c.yaml: epochs: expected an integer >= 1, got 'two'"),
    ("batch_size: 0\n", "c.yaml: batch_size: expected an integer >= 1, got 0"),
    ("lr: fast\n", "c.yaml: lr: expected a number > 0, got 'fast'"),
    ("data: 5\n", "c.yaml: data: expected a string, got 5"),
    ("amp: maybe\n", "c.yaml: amp: expected true or false, got 'maybe'"),
    ("model_options: {timesteps: two}\n", "c.yaml: model_options.timesteps: expected an integer >= 1"),
    ("model_options: [1, 2]\n", "c.yaml: model_options: expected a mapping"),
    ("epoch: 3\n", "c.yaml: unknown options ['epoch']"),
    ("epochs: [1\nlr: 2\n", "c.yaml: not valid YAML (line "),
    ("- epochs\n", "c.yaml: expected a mapping of options"),
])
def test_bad_yaml_is_refused_naming_file_and_key_before_anything_is_written(tmp_path, capsys, text, message):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    out = tmp_path / "run"
    assert train(out, "--config", str(config)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_yaml_exponent_numbers_are_read_as_numbers(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("lr: 1e-3\nweight_decay: 5E-2\nepochs: '3'\n")  # YAML reads 1e-3 as a string
    cfg, _ = parse_args(["--config", str(config)])
    assert (cfg.lr, cfg.weight_decay, cfg.epochs) == (0.001, 0.05, 3)
    out = tmp_path / "run"
    assert train(out, "--config", str(config), "--max-steps", "1", "--lr", "2e-3") == 0
    assert (out / "config.yaml").read_text().count("lr: 0.002\n") == 1


def test_missing_config_file_is_refused(tmp_path, capsys):
    assert train(tmp_path / "run", "--config", str(tmp_path / "none.yaml")) == 2
    assert "none.yaml: cannot read it" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_resume_lr_needs_resume(tmp_path, capsys):
    assert train(tmp_path / "run", "--resume-lr", "1e-4") == 2
    assert "--resume-lr only applies with --resume" in capsys.readouterr().err


def test_evaluation_split_is_refused_with_a_clear_message(tmp_path, capsys):
    assert train(tmp_path / "run", data=f"imagenet-val:{tmp_path}") == 2
    err = capsys.readouterr().err
    assert "imagenet-val is an evaluation split and cannot be trained on" in err and "imagenet:DIR" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("spec", ["synthetic:abc", "synthetic:0", "synthetic:-3", "synthetic:2.5"])
def test_bad_synthetic_spec_is_a_data_error(tmp_path, capsys, spec):
    with pytest.raises(DataError, match=r"synthetic:N needs a positive whole number"):
        DataSpec.parse(spec)
    assert train(tmp_path / "run", data=spec) == 2
    assert "synthetic:N needs a positive whole number" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_batch_larger_than_the_data_is_refused_before_writing(tmp_path, capsys):
    assert train(tmp_path / "run", "--batch-size", "100") == 2
    assert "exceeds the 64 training images" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.write_text("notes")
    assert train(out) == 2
    assert "is a file, not a folder" in capsys.readouterr().err and out.read_text() == "notes"


# ----------------------------------------------------------------------------- run records

def test_run_folder_another_process_trains_is_refused(tmp_path, capsys):
    import subprocess
    import sys

    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from tdsnn.training.run_lock import hold_run\n"
                               "with hold_run(Path(sys.argv[1])):\n print('held', flush=True); time.sleep(60)",
                               str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        held = files(out)
        assert train(out) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"tdsnn-train: {out} is being trained by pid {holder.pid}") and err.count("\n") == 1
        assert files(out) == held  # nothing written
    finally:
        holder.kill()
        holder.wait()
    assert train(out) == 0  # the lock ended with its process
    assert (out / "train" / "final.safetensors").is_file()


def test_refused_rerun_leaves_the_run_records_alone(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out, "--epochs", "1") == 0
    before = files(out)
    assert train(out, "--epochs", "1", "--lr", "0.5") == 2  # the finished train stage ran with lr 0.002
    assert "was run with a different config" in capsys.readouterr().err
    assert files(out) == before  # config.yaml still records the run that was made
    assert train(out, "--epochs", "2") == 2
    assert files(out) == before


# ----------------------------------------------------------------------------- checkpoints

def test_unreadable_stage_marker_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out) == 0
    (out / "train" / "stage.json").write_text('{"config_hash": ')  # e.g. a disk that filled up
    before = files(out)
    assert train(out) == 2
    assert f"{out / 'train' / 'stage.json'} is unreadable" in capsys.readouterr().err
    assert files(out) == before



@pytest.mark.parametrize("killed_before", [".state.safetensors", ".json"])
def test_kill_while_a_checkpoint_is_written_resumes_from_the_previous_one(tmp_path, monkeypatch, killed_before):
    """A kill after the second checkpoint's model file is in place but before the rest of
    it is: resuming continues from the first checkpoint and matches an uninterrupted run."""
    args = ["--epochs", "2"]
    assert train(tmp_path / "straight", *args) == 0

    replace = os.replace
    placed = []

    def killing_replace(src, dst):
        dst = str(dst)
        if os.path.basename(os.path.dirname(dst)) == "train" and dst.endswith(killed_before):
            placed.append(dst)
            if len(placed) == 2:  # the second checkpoint of the stage
                raise KeyboardInterrupt
        replace(src, dst)

    monkeypatch.setattr(os, "replace", killing_replace)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "split", *args)
    monkeypatch.setattr(os, "replace", replace)
    assert not (tmp_path / "split" / "train" / "stage.json").exists()

    assert train(tmp_path / "split", *args, "--resume") == 0
    a = load_file(str(tmp_path / "straight" / "train" / "final.safetensors"))
    b = load_file(str(tmp_path / "split" / "train" / "final.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_skips_a_corrupt_newer_generation(tmp_path, capsys):
    """When two generations are on disk (a kill between writing one and deleting the other)
    and the newer is damaged, resuming falls back to the older one and says so."""
    args = ["--epochs", "2"]
    assert train(tmp_path / "straight", *args) == 0
    stage = tmp_path / "split" / "train"
    assert train(tmp_path / "split", *args, "--max-steps", "4") == 0  # one generation: the end of epoch 1
    [first] = model_checkpoints(stage)
    kept = {p: p.read_bytes() for p in stage.glob(first.name.split(".")[0] + ".*")}
    assert train(tmp_path / "split", *args, "--max-steps", "6", "--resume") == 0  # a newer one replaces it
    for path, data in kept.items():  # both on disk, as after a kill before the old one is deleted
        path.write_bytes(data)
    [newer] = [p for p in model_checkpoints(stage) if p != first]
    newer.write_bytes(newer.read_bytes()[:-64])  # truncated
    capsys.readouterr()
    assert train(tmp_path / "split", *args, "--resume") == 0
    assert f"skipped checkpoint {newer.name.split('.')[0]}: sha256 mismatch" in capsys.readouterr().out
    a = load_file(str(tmp_path / "straight" / "train" / "final.safetensors"))
    b = load_file(str(stage / "final.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resumed_epoch_metrics_cover_the_whole_epoch(tmp_path):
    args = ["--epochs", "2"]
    assert train(tmp_path / "straight", *args) == 0
    assert train(tmp_path / "split", *args, "--max-steps", "1") == 0  # 1 of 4 batches of epoch 1
    assert train(tmp_path / "split", *args, "--max-steps", "6", "--resume") == 0  # mid-epoch 2
    assert train(tmp_path / "split", *args, "--resume") == 0

    def rows(run):
        lines = (tmp_path / run / "train" / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]

    assert rows("straight") == rows("split") and len(rows("split")) == 2
    csv_lines = (tmp_path / "split" / "train" / "metrics.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and csv_lines[0].startswith("epoch,step,lr,train_ce")


def test_checkpoint_with_corrupt_header_config_is_a_checkpoint_error(tmp_path):
    model = tdsnn.create_model("resnet18", **TINY_MODEL)
    good = tmp_path / "good.safetensors"
    save_model(model, good)
    state = load_file(str(good))
    for i, config in enumerate(['{"arch": "resnet18", "width": 0.25', "[1, 2]", '"resnet18"',
                                '{"arch": "resnet18", "colour": true}']):
        path = tmp_path / f"bad{i}.safetensors"
        save_file(state, str(path), metadata={"config": config})
        with pytest.raises(CheckpointError, match="the model config in its header is corrupt"):
            read_checkpoint(path)
        with pytest.raises(CheckpointError, match="the model config in its header is corrupt"):
            tdsnn.load_model(path)
    raw = bytearray(good.read_bytes())
    raw[8:16] = b"{{{{{{{{"  # the safetensors header JSON itself
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="not a readable safetensors checkpoint"):
        read_checkpoint(broken)


# ----------------------------------------------------------------------------- a NaN stop

def test_nan_stop_keeps_only_a_checkpoint_with_finite_weights(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--model", "sresnet18", "--timesteps", "2", "--epochs", "3", "--checkpoint-minutes", "0", "--lr", "1e20"]
    assert train(out, *args) == 3  # checkpoints after every step; the weights diverge within two
    err = capsys.readouterr().err
    assert "--resume --resume-lr X (X < 1e+20)" in err
    kept = int(re.search(r"last checkpoint \(step (\d+), finite\)", err).group(1))
    [checkpoint] = model_checkpoints(out / "train")
    _, weights = read_checkpoint(checkpoint)
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())
    [state] = (out / "train").glob("*.state.safetensors")
    assert all(torch.isfinite(t).all() for k, t in load_file(str(state)).items() if k.startswith("optimizer."))
    assert json.loads((out / "train" / "stopped.json").read_text())["step"] >= kept >= 1
    before = files(out)
    assert train(out, *args, "--resume", "--resume-lr", "1e21") == 2  # not lower
    assert "--resume-lr 1e+21 must be lower than the learning rate 1e+20" in capsys.readouterr().err
    assert files(out) == before


def test_resume_after_a_nan_stop_with_a_lower_lr(tmp_path, monkeypatch, capsys):
    """A model whose loss becomes NaN while the learning rate is above 0.01: warm-up reaches
    that in epoch 2, so the stop keeps the checkpoint of epoch 1, and --resume-lr continues
    it below the limit to the end."""
    optimizers = []

    class RecordedAdamW(torch.optim.AdamW):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            optimizers.append(self)

    class DivergesAboveLr(Objective):
        def forward(self, images, labels, generator):
            loss, logits, logs = super().forward(images, labels, generator)
            return (loss * float("nan") if optimizers[-1].param_groups[0]["lr"] > 0.01 else loss), logits, logs

    monkeypatch.setattr(torch.optim, "AdamW", RecordedAdamW)
    monkeypatch.setattr(loop, "Objective", DivergesAboveLr)
    out = tmp_path / "run"
    args = ["--epochs", "3", "--lr", "0.02", "--warmup-epochs", "2"]  # lr (step + 1) / 8 * 0.02
    assert train(out, *args) == 3
    assert "loss became nan at epoch 2, step 4; stopped, the last checkpoint (step 4, finite)" in capsys.readouterr().err
    assert train(out, *args, "--resume") == 3  # the same learning rate diverges the same way
    capsys.readouterr()
    assert train(out, *args, "--resume", "--resume-lr", "0.005") == 0
    assert "learning rate 0.02 -> 0.005 from step 4 (--resume-lr)" in capsys.readouterr().out
    record = json.loads((out / "train" / "stage.json").read_text())
    assert record["finished"] and record["step"] == 12 and record["lr_changes"] == [{"step": 4, "lr": 0.005}]
    assert [row["epoch"] for row in record["metrics"]] == [1, 2, 3]
    lrs = [row["lr"] for row in record["metrics"]]  # after epochs 1 (before the stop), 2 and 3
    assert lrs == pytest.approx([0.02 * 5 / 8, 0.005, 0.0])
    assert not (out / "train" / "stopped.json").exists()
    assert yaml.safe_load((out / "config.yaml").read_text())["lr"] == 0.02  # the stage's own options
    capsys.readouterr()
    assert train(out, *args) == 0 and "skipped" in capsys.readouterr().out  # finished: a rerun skips it


def test_resume_lr_leaves_a_stage_that_did_not_diverge_alone(tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out, "--epochs", "2", "--max-steps", "2") == 0
    capsys.readouterr()
    assert train(out, "--epochs", "2", "--max-steps", "3", "--resume", "--resume-lr", "1e-4") == 0
    assert "did not stop on a non-finite value, so --resume-lr does not apply" in capsys.readouterr().out
    [record] = (out / "train").glob("ckpt-*.json")
    progress = json.loads(record.read_text())
    assert progress["scheduler"]["base_lrs"] == [0.002] and progress["progress"]["lr_changes"] == []


# ----------------------------------------------------------------------------- data

def _image_folder(root, bad_name, bad_bytes):
    for split in ("train", "val"):
        for label in ("a", "b"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (20, 20), (40 * i, 90, 200)).save(folder / f"{i}.png")
    (root / "train" / "b" / bad_name).write_bytes(bad_bytes)
    return root / "train" / "b" / bad_name


def _png_bytes():
    buffer = io.BytesIO()
    Image.effect_noise((32, 32), 40).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["corrupt", "truncated"])
def test_unreadable_image_in_a_folder_names_the_file(tmp_path, capsys, kind):
    data = b"this is not an image" if kind == "corrupt" else _png_bytes()[:200]
    bad = _image_folder(tmp_path / "data", "x.png", data)
    dataset = build_dataset(f"folder:{tmp_path / 'data'}", 16, train=True)
    index = [i for i, (path, _) in enumerate(dataset.samples) if path == str(bad)][0]
    with pytest.raises(DataError, match=re.escape(str(bad)) + ": not a readable image"):
        dataset[index]
    dataset[0]  # the readable ones still load
    out = tmp_path / "run"
    assert main(["--data", f"folder:{tmp_path / 'data'}", "--out", str(out), *TINY, "--batch-size", "1"]) == 2
    last = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert last.startswith(f"tdsnn-train: {bad}: not a readable image (")
    assert ("unknown or corrupt image format" if kind == "corrupt" else "truncated") in last


# ----------------------------------------------------------------------------- runtime

def test_session_leaves_the_process_group_however_the_run_ends(monkeypatch):
    calls, group = [], {"up": False}

    def init(backend):
        calls.append(("init", backend))
        group["up"] = True

    def destroy():
        calls.append("destroy")
        group["up"] = False

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "init_process_group", init)
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "is_initialized", lambda: group["up"])
    monkeypatch.setattr(dist, "destroy_process_group", destroy)

    def stage_that_returns_early():
        with runtime.session("cpu") as rt:
            assert (rt.rank, rt.world, rt.main) == (1, 2, False)
            return "stopped"

    assert stage_that_returns_early() == "stopped"
    with pytest.raises(RuntimeError, match="stage failed"):
        with runtime.session("cpu"):
            raise RuntimeError("stage failed")
    assert calls == [("init", "gloo"), "destroy", ("init", "gloo"), "destroy"]
