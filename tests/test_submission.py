"""Brain-Score submission end to end, offline: a wheel installed outside the checkout, an export
whose weights come from a (pre-populated, offline) Hugging Face hub or a local HTTP server,
the plugin loaded through ``brainscore_vision.load_model``, and ``check``."""
import dataclasses
import functools
import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from brainscore_core.metadata import contract
from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet

from brainscore_plugin.__main__ import main
from brainscore_plugin.check import check_plugin, overlay_site, registered_ids
from brainscore_plugin.commitment import brain_model
from brainscore_plugin.export import INIT_PY, registrations
from brainscore_plugin.exported import ExportedPlugin
from brainscore_plugin.metadata import MetadataError, validate
from brainscore_plugin.requirements import RequirementError, pinned_requirement, requirement_problems
from tdsnn import registry
from tdsnn.checkpoint import CheckpointError, WeightsUnavailable, sha256_file

CHECKOUT = Path(__file__).resolve().parent.parent
PINNED = "tdsnn @ git+https://github.com/tdsnn/tdsnn@" + "0" * 40
REPO, REVISION = "tdsnn-test/demo", hashlib.sha1(b"tdsnn-test-revision").hexdigest()
SNN, ANN = "sresnet18.fmnist", "resnet18.fmnist"
#: Every exported demo: the ResNet-18 pair, the recurrent SCornet and the spiking transformer.
EXPORTS = (SNN, ANN, "scornet.fmnist", "spikformer.fmnist")
#: Brain-Score architecture family and ``recurrent`` of each export's metadata.
FAMILIES = {SNN: ("spiking_convolutional_neural_network", False), ANN: ("convolutional_neural_network", False),
            "scornet.fmnist": ("spiking_recurrent_convolutional_neural_network", True),
            "spikformer.fmnist": ("spiking_transformer", False)}
#: What each load records: rate-coded identifiers one window, ``-temporal`` ones two halves of 0-250 ms.
RATE_BINS, TEMPORAL_BINS = [(70, 170)], [(0, 125), (125, 250)]
INJECTION = "x'] = 0; __import__('os').system('touch PWN') #"


def _copy_source(destination: Path) -> None:
    """The files a wheel is built from (so the build writes nothing into the checkout)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    destination.mkdir()
    shutil.copy2(CHECKOUT / "setup.py", destination / "setup.py")
    for package in ("tdsnn", "brainscore_plugin", "harness"):
        shutil.copytree(CHECKOUT / package, destination / package, ignore=ignore)


@pytest.fixture(scope="session")
def wheel_python(tmp_path_factory):
    """A fresh venv with tdsnn installed from its wheel (non-editable); the dependencies come
    from the checkout's venv through a .pth file, whose editable-install hook does not run there."""
    root = tmp_path_factory.mktemp("wheel")
    _copy_source(root / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    str(root / "src"), "-w", str(root / "dist")], check=True, cwd=root, capture_output=True)
    wheel, = (root / "dist").glob("tdsnn-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "v")], check=True)
    python = root / "v" / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "checkout_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True)
    where = subprocess.run([python, "-c", "import tdsnn, brainscore_plugin; print(tdsnn.__file__); "
                                          "print(brainscore_plugin.__file__); print(len(tdsnn.list_models()))"],
                           check=True, capture_output=True, text=True, cwd=root).stdout.split()
    for path in where[:2]:
        assert Path(path).is_relative_to(site) and not Path(path).is_relative_to(CHECKOUT), where
    assert int(where[2]) > 0  # the packaged registry came with the wheel
    return python


def put_hub_file(cache: Path, repo: str, filename: str, source: Path, revision: str = REVISION) -> Path:
    """``source`` as ``filename`` of hub ``repo`` at ``revision`` (also ``main``) in a hub cache."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(revision)
    path = folder / "snapshots" / revision / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, path)
    return path


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """An offline hub cache serving the weights of every export under ``REPO@REVISION``;
    returns the environment that points huggingface_hub at it."""
    root = tmp_path_factory.mktemp("hf")
    for name in EXPORTS:
        put_hub_file(root / "hub", REPO, f"{name}.safetensors", registry.weights_file(registry.resolve(name)))
    return {"HF_HOME": str(root), "HF_HUB_CACHE": str(root / "hub"), "HF_HUB_OFFLINE": "1"}


@pytest.fixture
def offline_hub(hub, monkeypatch):
    """``hub`` in use in this process (huggingface_hub reads its constants at import)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", hub["HF_HUB_CACHE"])
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hub


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = {}
    for i in range(7):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(root / f"im{i}.png")
        paths[f"im{i}"] = str(root / f"im{i}.png")
    return paths


def export(*args: str) -> tuple[int, str, str]:
    """``python -m brainscore_plugin export ARGS`` in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(["export", *args])
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every export's variant exported with ``--weights-hub REPO@REVISION``: {name: (folder, stdout)}."""
    root = tmp_path_factory.mktemp("plugins")
    done = {}
    for name in EXPORTS:
        status, out, err = export(name, str(root), "--weights-hub", f"{REPO}@{REVISION}", "--requirement", PINNED)
        assert status == 0, err
        folder = Path(out.split("plugin written to ", 1)[1].split("\n", 1)[0])
        done[name] = (folder, out)
    return done


LOAD = '''
import json, sys
import brainscore_plugin  # before brainscore_vision: requirements are not installed
import brainscore_vision, numpy as np, pandas as pd, tdsnn, tdsnn.registry
from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet
try:
    tdsnn.list_models()
    raise SystemExit("the registry was readable: the test would not show the plugin does without it")
except tdsnn.registry.RegistryError:
    pass
bins, paths, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
s = StimulusSet(pd.DataFrame({"stimulus_id": list(paths), "object_name": ["o"] * len(paths)}))
s.stimulus_paths = paths
s.identifier = "tdsnn.tests.submission"
rates = {}
for identifier, windows in bins.items():
    model = brainscore_vision.load_model(identifier)
    assert model.identifier == identifier
    model.start_recording("IT", [tuple(w) for w in windows])
    rates[identifier] = model.look_at(s).values
np.savez(out, **rates)
print("TDSNN", tdsnn.__file__)
'''


@pytest.fixture(scope="module")
def wheel_rates(wheel_python, hub, exported, stimuli, tmp_path_factory):
    """IT rates of every export's identifiers (rate-coded, and ``-temporal`` for spiking models)
    loaded through brainscore_vision.load_model in the wheel's venv, from a folder outside the
    checkout, with no usable tdsnn registry: ``{(name, temporal): rates}``."""
    root = tmp_path_factory.mktemp("load")
    site = overlay_site(root, [folder for folder, _ in exported.values()])
    ids = {}
    for name, (folder, _) in exported.items():
        rate, temporal = registered_ids(folder / "__init__.py")
        ids[name, False] = rate
        if name != ANN:
            ids[name, True] = temporal
    bins = {identifier: TEMPORAL_BINS if temporal else RATE_BINS for (_, temporal), identifier in ids.items()}
    env = {**os.environ, **hub, "PYTHONPATH": str(site), "PYTHONSAFEPATH": "1",
           "TDSNN_REGISTRY": str(root / "no-registry.yaml")}
    done = subprocess.run([wheel_python, "-c", LOAD, json.dumps(bins), json.dumps(stimuli),
                           str(root / "rates.npz")], env=env, cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not Path(done.stdout.split("TDSNN ", 1)[1].strip()).is_relative_to(CHECKOUT)
    rates = np.load(root / "rates.npz")
    return {key: rates[identifier] for key, identifier in ids.items()}


@pytest.mark.parametrize("name, temporal", [*((n, False) for n in EXPORTS), *((n, True) for n in EXPORTS if n != ANN)])
def test_installed_plugin_matches_the_checkout(name, temporal, wheel_rates, stimuli):
    model = brain_model(name, temporal=temporal, batch_size=7)
    model.start_recording("IT", TEMPORAL_BINS if temporal else RATE_BINS)
    s = StimulusSet(pd.DataFrame({"stimulus_id": list(stimuli), "object_name": ["o"] * len(stimuli)}))
    s.stimulus_paths = stimuli
    s.identifier = "tdsnn.tests.submission.checkout"
    expected = model.look_at(s).values
    network = registry.create_model(name)
    it_units = int(np.prod(network.block_dims()[registry.resolve(name).region_layer_map["IT"]]))
    assert wheel_rates[name, temporal].shape == expected.shape == (7, it_units, *((2,) if temporal else ()))
    np.testing.assert_allclose(wheel_rates[name, temporal], expected, atol=1e-6)
    assert expected.std() > 0
    if network.is_spiking:  # spike rates over the T timesteps, or over the T / 2 of each half
        steps = network.timesteps // 2 if temporal else network.timesteps
        assert np.array_equal(expected * steps, np.round(expected * steps))


@pytest.mark.parametrize("name", EXPORTS)
def test_export_writes_a_self_describing_plugin(name, exported):
    folder, out = exported[name]
    entry = registry.resolve(name)
    sha = sha256_file(registry.weights_file(entry))
    assert f"sha256 {sha}" in out
    assert f"hf upload {REPO} {registry.weights_file(entry)} {name}.safetensors" in out
    assert sorted(p.name for p in folder.iterdir()) == ["__init__.py", "metadata.yml", "model.py", "plugin.json",
                                                         "requirements.txt", "test.py"]
    assert (folder / "requirements.txt").read_text() == PINNED + "\n"
    plugin = json.loads((folder / "plugin.json").read_text())
    assert plugin["weights"] == {"hub": {"repo": REPO, "filename": f"{name}.safetensors", "revision": REVISION}}
    assert plugin["sha256"] == sha and plugin["region_layer_map"] == entry.region_layer_map
    assert plugin["preprocessing"] == {"size": entry.config.input_size, "mean": list(entry.preprocessing.mean),
                                       "std": list(entry.preprocessing.std)}
    assert name not in (folder / "model.py").read_text()  # model.py is the same for every export
    assert not list(folder.parent.glob(".*"))


@pytest.mark.parametrize("name", EXPORTS)
def test_metadata_passes_the_contract_with_true_values(name, exported):
    folder, _ = exported[name]
    document = contract.load((folder / "metadata.yml").read_text(), "vision")
    ids = registered_ids(folder / "__init__.py")
    assert list(document["models"]) == ids
    model = registry.load_model(registry.weights_file(registry.resolve(name)))
    for identifier, entry in document["models"].items():
        assert entry["model"]["parameter_count"] == sum(p.numel() for p in model.parameters())
        size = model.config.input_size
        assert entry["model"]["input_resolution"] == {"channels": 3, "height": size, "width": size}
        family, recurrent = FAMILIES[name]
        assert entry["model"]["visual_degrees"] == 8.0 and entry["model"]["recurrent"] is recurrent
        assert entry["model"]["architecture"]["family"] == family
        assert registry.resolve(name).region_layer_map["IT"] in entry["model"]["architecture"]["description"]
        assert entry["data"]["training_datasets"] == [{"identifier": "other", "name": "Fashion-MNIST",
                                                       "role": "training"}]
        assert entry["sources"]["paper"]["url"] == "https://arxiv.org/abs/2508.04270"
        status = {a["path"]: a["status"] for a in entry["assertions"]}
        for unknown in ("/legal/license", "/training/learning_rate", "/people/creators"):
            assert status[unknown] == "undocumented"
            assert contract.get_path(entry, unknown) is None  # marked, not invented
    legacy = yaml.safe_dump({"models": {ids[0]: {"architecture": "DCNN"}}})
    with pytest.raises(MetadataError, match='schema_version must be the string "2.0"'):
        validate(legacy)


def test_tampered_weights_are_refused(exported, offline_hub, tmp_path):
    folder, _ = exported[SNN]
    plugin = ExportedPlugin.read(folder)
    cached = Path(offline_hub["HF_HUB_CACHE"]) / f"models--{REPO.replace('/', '--')}" / "snapshots" / REVISION
    tampered = tmp_path / "tampered.safetensors"
    data = bytearray((cached / f"{SNN}.safetensors").read_bytes())
    data[-1] ^= 0xFF
    tampered.write_bytes(bytes(data))
    put_hub_file(Path(offline_hub["HF_HUB_CACHE"]), "tdsnn-test/tampered", f"{SNN}.safetensors", tampered)
    evil = ExportedPlugin.from_json({**plugin.to_json(), "weights": {"hub": {
        "repo": "tdsnn-test/tampered", "filename": f"{SNN}.safetensors", "revision": REVISION}}})
    with pytest.raises(CheckpointError, match=r"weights from hf://tdsnn-test/tampered/.*sha256 mismatch"):
        evil.commitment(folder, plugin.base_id)


def test_missing_hub_file_names_the_source(exported, offline_hub):
    folder, _ = exported[SNN]
    plugin = ExportedPlugin.read(folder)
    missing = ExportedPlugin.from_json({**plugin.to_json(), "weights": {"hub": {
        "repo": "tdsnn-test/nothing-here", "filename": f"{SNN}.safetensors", "revision": REVISION}}})
    with pytest.raises(WeightsUnavailable, match=f"hf://tdsnn-test/nothing-here/{SNN}.safetensors@{REVISION}"):
        missing.commitment(folder, plugin.base_id)


def test_weights_from_a_url_are_downloaded_once_and_verified(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    shutil.copyfile(registry.weights_file(registry.resolve(ANN)), served / f"{ANN}.safetensors")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/{ANN}.safetensors"
    monkeypatch.setenv("BRAINSCORE_HOME", str(tmp_path / "bs"))
    try:
        status, out, err = export(ANN, str(tmp_path / "plugins"), "--weights-url", url, "--requirement", PINNED)
        assert status == 0, err
        folder = Path(out.split("plugin written to ", 1)[1].split("\n", 1)[0])
        assert f"make {registry.weights_file(registry.resolve(ANN))} available at\n  {url}" in out
        plugin = ExportedPlugin.read(folder)
        model = plugin.commitment(folder, plugin.base_id)
        assert model.identifier == plugin.base_id
        cached = tmp_path / "bs" / "models" / "tdsnn" / plugin.sha256 / f"{ANN}.safetensors"
        assert sha256_file(cached) == plugin.sha256
    finally:
        server.shutdown()
    assert plugin.commitment(folder, plugin.base_id + "-temporal").identifier.endswith("-temporal")  # cached
    cached.write_bytes(b"not the weights")
    with pytest.raises(CheckpointError, match=f"weights from {url}: sha256 mismatch"):
        plugin.commitment(folder, plugin.base_id)


def test_check_passes_on_a_good_export(wheel_python, hub, exported, tmp_path):
    folder, _ = exported[SNN]
    done = subprocess.run([wheel_python, "-m", "brainscore_plugin", "check", str(folder)], cwd=tmp_path,
                          env={**os.environ, **hub, "PYTHONSAFEPATH": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    for identifier in registered_ids(folder / "__init__.py"):
        assert f"ok: brainscore_vision.load_model({identifier!r}) looks at images" in done.stdout


def test_the_wheel_ships_the_sweeps_trade_off_files(wheel_python, tmp_path):
    code = ("import sys; from pathlib import Path; from harness import tradeoff_figure; "
            "print(*tradeoff_figure.report_figures([{'name': sys.argv[1]}], Path(sys.argv[2])))")
    variant = next(n for n in registry.list_models() if registry.resolve(n).sweep == "fmnist")
    done = subprocess.run([wheel_python, "-c", code, variant, str(tmp_path)], cwd=tmp_path, capture_output=True,
                          text=True, check=True)
    figure = tmp_path / "tradeoff-fmnist.png"
    assert done.stdout.split() == [str(figure)]
    assert figure.read_bytes() == (CHECKOUT / "tdsnn" / "sweeps" / "fmnist" / "tradeoff.png").read_bytes()


def test_check_fails_with_clear_messages(exported, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(exported[ANN][0], bad)
    (bad / "weights.bin").write_bytes(os.urandom(1_500_000))
    (bad / "requirements.txt").write_text("tdsnn==0.1.0\n./local/folder\n")
    text = (bad / "metadata.yml").read_text().replace("schema_version: '2.0'", "schema_version: '1.0'")
    (bad / "metadata.yml").write_text(text)
    out = io.StringIO()
    assert check_plugin(bad, out=out) == 1
    report = out.getvalue()
    assert 'FAIL: metadata.yml: metadata rejected by brainscore_core.metadata.contract: schema_version must be' in report
    assert "FAIL: weights.bin is 1.5 MB; upstream plugins carry no file above 1 MB" in report
    assert "FAIL: requirements.txt line 1 ('tdsnn==0.1.0'): tdsnn is not on a package index" in report
    assert "FAIL: requirements.txt line 2 ('./local/folder'): not a requirement specifier" in report
    assert "not attempted" in report
    assert main(["check", str(tmp_path / "absent")]) == 2


def test_requirement_problems():
    assert requirement_problems([PINNED, "huggingface_hub>=0.20", "# comment", ""]) == []
    assert len(requirement_problems(["tdsnn", "tdsnn @ file:///work/main", "-e .", "--index-url x"])) == 4


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


def test_default_requirement_pins_the_commit_and_refuses_a_dirty_tree(tmp_path):
    (tmp_path / "setup.py").write_text('from setuptools import setup\nsetup(name="tdsnn", url="https://example.org/o/tdsnn")\n')
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "setup.py")
    _git(tmp_path, "commit", "-q", "-m", "x")
    commit = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert pinned_requirement(tmp_path)[0] == f"tdsnn @ git+https://example.org/o/tdsnn@{commit}"
    (tmp_path / "setup.py").write_text((tmp_path / "setup.py").read_text() + "# edited\n")
    with pytest.raises(RequirementError, match="uncommitted changes.*--allow-dirty"):
        pinned_requirement(tmp_path)
    assert pinned_requirement(tmp_path, allow_dirty=True)[2] == commit


@pytest.mark.parametrize("args, message", [
    (["nosuch.model", "--bundle-weights"], "unknown model"),
    ([INJECTION, "--bundle-weights"], "invalid model name"),
    ([SNN, "--weights-hub", "not a repo"], "invalid hub repository"),
    ([SNN, "--weights-url", "ftp://example.org/w.safetensors"], "invalid weights URL"),
    ([SNN, "--weights-url", "http://example.org/w.safetensors"], "invalid weights URL"),
    ([SNN, "--bundle-weights", "--requirement", "tdsnn==0.1.0"], "tdsnn is not on a package index"),
])
def test_export_bad_input_exits_2_before_writing(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = export(args[0], str(tmp_path / "out"), *args[1:])
    assert status == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "PWN").exists()


def test_crafted_registry_name_never_reaches_generated_code(tmp_path, monkeypatch):
    real = registry.resolve(SNN)
    raw = yaml.safe_load(registry.PACKAGED_REGISTRY.read_text())
    spec = dict(raw["variants"][SNN], default=True)
    spec["weights"] = dict(spec["weights"], path=str(registry.weights_file(registry.resolve(SNN))))
    raw["variants"] = {f"sresnet18.{INJECTION}": spec}
    crafted = tmp_path / "model_registry.yaml"
    crafted.write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(registry, "REGISTRY_PATH", crafted)
    registry._read_registry.cache_clear()
    monkeypatch.chdir(tmp_path)
    try:
        status, _, err = export("sresnet18", str(tmp_path / "out"), "--bundle-weights", "--requirement", PINNED)
    finally:
        registry._read_registry.cache_clear()
    assert status == 2 and ("invalid" in err or "registry" in err), err
    assert not (tmp_path / "out").exists() and not (tmp_path / "PWN").exists()
    # a registry that let it through still could not get it past export's own check
    monkeypatch.setattr(registry, "resolve", lambda name: dataclasses.replace(real, name=f"sresnet18.{INJECTION}"))
    status, _, err = export("sresnet18", str(tmp_path / "out"), "--bundle-weights", "--requirement", PINNED)
    assert status == 2 and "invalid model name" in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "PWN").exists()
    # and were such a name ever registered, the generated line would hold it as a literal only
    namespace = {"model_registry": {}, "commitment": lambda identifier: identifier}
    exec(INIT_PY.format(registrations=registrations([INJECTION])).split("\n\n", 2)[2], namespace)
    assert namespace["model_registry"][INJECTION]() == INJECTION and not (tmp_path / "PWN").exists()


def test_reexport_replaces_the_folder_and_refuses_foreign_ones(tmp_path, monkeypatch):
    out = tmp_path / "plugins"
    status, stdout, err = export(ANN, str(out), "--bundle-weights", "--requirement", PINNED)
    assert status == 0, err
    folder = Path(stdout.split("plugin written to ", 1)[1].split("\n", 1)[0])
    assert sha256_file(folder / f"{ANN}.safetensors") == ExportedPlugin.read(folder).sha256
    (folder / "stale.txt").write_text("left from an earlier export")
    (folder / "model.py").write_text("edited")
    status, _, err = export(ANN, str(out), "--weights-hub", REPO, "--requirement", PINNED)
    assert status == 0, err
    assert not (folder / "stale.txt").exists() and not (folder / f"{ANN}.safetensors").exists()
    assert (folder / "model.py").read_text() != "edited"
    assert ExportedPlugin.read(folder).weights.revision is None
    assert sorted(p.name for p in out.iterdir()) == [folder.name]  # nothing set aside is left
    shutil.rmtree(folder)
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    status, _, err = export(ANN, str(out), "--weights-hub", REPO, "--requirement", PINNED)
    assert status == 2 and "not a previous export" in err and "--force" in err
    assert (folder / "notes.txt").read_text() == "mine"
    status, _, err = export(ANN, str(out), "--weights-hub", REPO, "--requirement", PINNED, "--force")
    assert status == 0 and not (folder / "notes.txt").exists() and (folder / "plugin.json").exists()
