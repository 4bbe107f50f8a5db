"""Bad input to harness/score.py: exit status 2 with a one-line message naming what is
wrong, before any suite runs and before anything is written (data found unreadable while
it is read: status 2 as soon as it is found, with nothing written but the cache)."""
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness import score
from harness.suites import accuracy

BASE = ["--model", "resnet18.tiny", "--compare", "", "--suites", "accuracy", "--no-progress"]


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a suite runs."""
    def refuse(*_):
        raise AssertionError("a suite ran although the input was bad")
    monkeypatch.setattr(accuracy, "run", refuse)


def fails(capsys, args, message):
    """Run score.py with ``args``: it must exit 2 with a one-line message holding ``message``."""
    assert score.main([*BASE, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("score.py: ") and "\n" not in err and "Traceback" not in err, err
    assert message in err, err
    return err


def read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write in (root writes anywhere but in sysfs)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return folder
    sysfs = Path("/sys")
    try:
        tempfile.TemporaryFile(dir=sysfs).close()
    except OSError:
        return sysfs
    pytest.skip("no read-only folder on this machine")


def test_out_that_is_a_file_fails_before_any_work(use_registry, tmp_path, capsys, no_work):
    out = tmp_path / "results.txt"
    out.write_text("keep me")
    fails(capsys, ["--out", str(out)], f"--out: {out} exists and is not a directory")
    assert out.read_text() == "keep me"
    fails(capsys, ["--out", str(out / "sub")], f"--out: {out} is not a directory")


def test_read_only_out_fails_before_any_work(use_registry, tmp_path, capsys, no_work):
    locked = read_only_folder(tmp_path)
    before = sorted(os.listdir(locked))
    fails(capsys, ["--out", str(locked / "tdsnn-results")], f"--out: cannot write in {locked}")
    assert sorted(os.listdir(locked)) == before


@pytest.mark.parametrize("args, message", [
    (["--model", "nosuchnet"], "unknown model 'nosuchnet'; registered models: resnet18"),
    (["--compare", "resnet18.tiny,bad.tag"], "unknown model 'bad.tag'"),
    (["--suites", "accuracy,vibes"], "unknown suite(s) vibes; valid: accuracy, topography"),
    (["--data", "mnist"], "--data: unknown dataset 'mnist'"),
    (["--weights", "/no/such.safetensors"], "--weights: no such file"),
    (["--categories", "/no/such/dir"], "--categories: /no/such/dir is not a directory"),
    (["--neural-data", "/no/pack"], "--neural-data: /no/pack is not a directory"),
    (["--entropy-timesteps", "1,x"], "--entropy-timesteps: expected comma-separated integers"),
    (["--data", "synthetic:abc"], "--data: "),
    (["--batch-size", "0"], "--batch-size: expected a positive integer, got 0"),
    (["--limit", "0"], "--limit: expected a positive integer, got 0"),
    (["--robustness-images", "-1"], "--robustness-images: expected a positive integer, got -1"),
    (["--entropy-timesteps", "0"], "--entropy-timesteps: expected positive integers, got '0'"),
    (["--entropy-timesteps", ","], "--entropy-timesteps: expected positive integers"),
    (["--noise-std", "-1"], "robustness: RobustnessConfig.noise_std must be >= 0"),
    (["--data", "imagenet-val:/no/such/val"], "--data: no such directory /no/such/val"),
    (["--data", "folder:/no/such"], "--data: no such directory /no/such/val"),
    (["--data", "cifar100:/no/such"], "--data: no such directory /no/such"),
    (["--benchmarks", "<identifier>"], "--benchmarks: unknown benchmark(s) <identifier>; registered: "),
    (["--model", "resnet18.tiny'; touch PWN #"], "invalid model name \"resnet18.tiny'; touch PWN #\""),
    (["--compare", "resnet18.tiny,../x"], "invalid model name '../x'"),
    (["--model", "ResNet18"], "invalid model name 'ResNet18'"),
])
def test_bad_values_exit_2_before_any_work(use_registry, tmp_path, capsys, no_work, args, message):
    out = tmp_path / "out"
    fails(capsys, ["--out", str(out), *args], message)
    assert not out.exists() and not (tmp_path / "PWN").exists()


def test_corrupt_image_in_a_folder_dataset_is_a_clean_error_naming_it(use_registry, tmp_path, capsys):
    rng = np.random.default_rng(0)
    val = tmp_path / "data" / "val"
    for c in range(4):  # the tiny models have 4 classes
        (val / f"c{c}").mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(val / f"c{c}" / "0.png")
    corrupt = val / "c2" / "1.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # a PNG header, then nothing readable
    out = tmp_path / "out"
    fails(capsys, ["--out", str(out), "--data", f"folder:{tmp_path / 'data'}"], str(corrupt))
    assert not (out / "results.json").exists() and not (out / "table.md").exists()
