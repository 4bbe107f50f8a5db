"""The Brain-Score suite (harness/suites/brainscore.py) and local neural-data packs
(harness/neural_pack.py): offline, registered benchmarks become unavailable entries within
seconds; a planted-signal pack scores through Brain-Score's own benchmark classes."""
import json
import socket
import threading
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from harness.neural_pack import PackError, load_pack, make_demo_pack, pack_digest, read_pack, write_pack
from harness.suites import brainscore as suite

REGION_KEYS = {f"brainscore_{r}" for r in ("V1", "V2", "V4", "IT")}


def subject(name="resnet18.tiny"):
    return SimpleNamespace(name=name, weights=None, sha256="0" * 64, device=torch.device("cpu"))


def options(benchmarks=None, packs=(), strict=False):
    return SimpleNamespace(benchmarks=benchmarks, neural_data=list(packs), strict=strict, progress=False,
                           batch_size=48)


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the suite builds a Brain-Score model."""
    def refuse(*_):
        raise AssertionError("the suite built a model although nothing could be scored")
    monkeypatch.setattr(suite, "brain_model_of", refuse)


@pytest.fixture
def fresh_preflight(monkeypatch):
    monkeypatch.setattr(suite, "_preflights", {})


def test_default_list_is_registered_and_mapped_to_regions():
    suite.check_benchmarks(list(suite.BENCHMARKS))  # every id exists in the installed brainscore_vision
    counts = {r: sum(v == r for v in suite.BENCHMARKS.values()) for r in ("V1", "V2", "V4", "IT")}
    assert counts == {"V1": 17, "V2": 2, "V4": 2, "IT": 2}
    assert sum(i.startswith("Marques2020_") for i in suite.BENCHMARKS) == 15
    assert suite.region_of("MajajHong2015.IT-pls") == "IT" and suite.region_of("Foo.bar") == "other"
    with pytest.raises(KeyError, match=r"unknown benchmark\(s\) Tong.Coggan2024_fMRI.V1-rdm; registered: "):
        suite.check_benchmarks(["Tong.Coggan2024_fMRI.V1-rdm"])  # ids are case-sensitive


def test_offline_registered_benchmarks_are_unavailable_within_seconds(use_registry, no_model, fresh_preflight):
    if suite.probe_endpoint("brainscore-storage.s3.amazonaws.com") is None:
        pytest.skip("S3 answers here: this test needs a machine without network")
    start = time.perf_counter()
    result = suite.run(subject(), options())
    elapsed = time.perf_counter() - start
    assert elapsed < 60, f"offline run took {elapsed:.1f} s"
    assert result["metrics"] == {}
    assert set(result["unavailable"]) == set(suite.BENCHMARKS) | REGION_KEYS
    for benchmark in suite.BENCHMARKS:
        why = result["unavailable"][benchmark]
        assert why.startswith("S3 unreachable (") and why.endswith("brainscore-storage.s3.amazonaws.com"), why
        assert "\n" not in why and len(why) < 200
    assert result["unavailable"]["brainscore_V1"].startswith("none of its 17 benchmark(s) could be scored")
    assert result["details"]["averaged"]["IT"] == ["MajajHong2015public.IT-pls", "tong.Coggan2024_fMRI.IT-rdm"]
    assert list(result["details"]["preflight"]) == ["brainscore-storage.s3.amazonaws.com"]  # one host, probed once
    json.dumps(result)  # JSON-serialisable

    start = time.perf_counter()
    with pytest.raises(suite.BenchmarkUnavailable, match="^FreemanZiemba2013public.V1-pls: S3 unreachable"):
        suite.run(subject(), options(strict=True))
    assert time.perf_counter() - start < 30


class SilentServer:
    """A TCP server on localhost that accepts connections and never answers."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def _accept(self):
        try:
            while True:
                self.held.append(self.sock.accept()[0])
        except OSError:
            pass

    def __exit__(self, *_):
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_preflight_gives_up_on_a_host_that_never_answers(monkeypatch, fresh_preflight):
    from brainscore_core.supported_data_standards.brainio.fetch import BotoFetcher

    monkeypatch.setattr(suite, "PREFLIGHT_TIMEOUT", 1.0)
    probes, probe = [], suite.probe_endpoint
    monkeypatch.setattr(suite, "probe_endpoint", lambda *a: probes.append(a) or probe(*a))
    with SilentServer() as server:  # like a network that drops packets: boto3 would wait minutes
        fetcher = BotoFetcher(f"https://127.0.0.1:{server.port}/bucket/assy_x.nc", "tdsnn-test-missing")
        start = time.perf_counter()
        with suite.s3_preflight(), pytest.raises(suite.S3Unreachable, match=r"^S3 unreachable \(.+\): 127\.0\.0\.1$"):
            fetcher.fetch()
        assert time.perf_counter() - start < 3
        with suite.s3_preflight(), pytest.raises(suite.S3Unreachable):
            fetcher.fetch()
        assert probes == [("127.0.0.1", server.port)]  # probed once, then remembered
    assert BotoFetcher.download_boto.__qualname__ == "BotoFetcher.download_boto"  # unpatched afterwards

    cached = BotoFetcher("https://brainscore-storage.s3.amazonaws.com/b/assy_cached.nc", "tdsnn-test-cached")
    open(cached.output_filename, "w").close()
    with suite.s3_preflight():
        assert cached.fetch() == cached.output_filename  # data in $BRAINIO_HOME: no network, no preflight
    assert len(probes) == 1


def test_reason_is_one_line():
    boto_like = Exception([RuntimeError("Unable to locate credentials"), RuntimeError(
        'Could not connect to the endpoint URL: "https://brainscore-storage.s3.amazonaws.com/x/assy_y.nc"')])
    assert suite.reason(boto_like) == "S3 unreachable (EndpointConnectionError): brainscore-storage.s3.amazonaws.com"
    assert suite.reason(ValueError("first line\nsecond line")) == "ValueError: first line"
    try:
        try:
            raise suite.S3Unreachable("S3 unreachable (x): host")
        except suite.S3Unreachable as inner:
            raise Exception([inner]) from inner
    except Exception as outer:  # noqa: BLE001
        assert suite.reason(outer) == "S3 unreachable (x): host"


def test_planted_pack_scores_clearly_above_its_shuffled_control(use_registry, tmp_path, monkeypatch):
    planted = make_demo_pack(tmp_path / "planted", "sresnet18.tiny", seed=1)
    control = make_demo_pack(tmp_path / "control", "sresnet18.tiny", seed=1, shuffled=True)
    built = []
    original = suite.brain_model_of
    monkeypatch.setattr(suite, "brain_model_of", lambda *a: built.append(1) or original(*a))
    result = suite.run(subject("sresnet18.tiny"), options(benchmarks=[], packs=[planted, control]))
    assert len(built) == 1  # one model for all packs
    assert result["details"]["reused_responses"] == 2  # each pack's RDM benchmark reuses its PLS responses
    assert result["unavailable"] == {}
    metrics, scores = result["metrics"], result["details"]["scores"]
    assert set(metrics) == {"local:planted", "local:planted:rdm", "local:control", "local:control:rdm"}
    assert scores["local:planted"]["raw"] > 0.5 and scores["local:control"]["raw"] < 0.2, scores
    assert metrics["local:planted"] > metrics["local:control"] + 0.3
    assert scores["local:planted:rdm"]["raw"] > scores["local:control:rdm"]["raw"] + 0.2
    for key in metrics:
        assert 0.5 < scores[key]["ceiling"] <= 1  # repetitions are consistent in both packs
    assert scores["local:planted"]["identifier"].startswith("local.planted-") and \
        scores["local:planted"]["identifier"].endswith(".IT-pls")
    assert not REGION_KEYS & set(metrics)  # local packs are not averaged into the public region scores
    json.dumps(result)


def random_pack(folder, n=24, reps=3, k=6, **kwargs):
    rng = np.random.default_rng(0)
    images = torch.rand(n, 3, 16, 16)
    meta = pd.DataFrame({"stimulus_id": [f"im{i}" for i in range(n)], "object_name": [f"c{i % 3}" for i in range(n)]})
    responses = rng.standard_normal((reps, n, k))
    return write_pack(folder, images, meta, responses, region="V4", subjects=["a", "a", "a", "b", "b", "b"],
                      **kwargs), responses


def test_pack_round_trip(tmp_path):
    folder, responses = random_pack(tmp_path / "p", metrics=("rdm", "pls"))
    pack = load_pack(folder)
    assert (pack.name, pack.region, pack.metrics, pack.stratification) == ("p", "V4", ("rdm", "pls"), "object_name")
    assert dict(pack.repetitions.sizes) == {"presentation": 72, "neuroid": 6}
    assert dict(pack.averaged.sizes) == {"presentation": 24, "neuroid": 6}
    order = [int(s[2:]) for s in pack.averaged["stimulus_id"].values]
    np.testing.assert_allclose(pack.averaged.values, responses.mean(0)[order], atol=1e-5)  # float32 on disk
    assert sorted(pack.benchmarks) == ["pls", "rdm"]
    assert pack.key("rdm") == "local:p" and pack.key("pls") == "local:p:pls"
    assert pack.benchmarks["pls"].identifier == f"local.p-{pack.digest[:8]}.V4-pls"
    assert pack.benchmarks["pls"].region == "V4"
    assert len(pack.stimulus_set) == 24 and pack.stimulus_set.identifier.startswith("tdsnn.pack.p-")
    assert suite.settings(subject(), options(packs=[folder])) == {"benchmarks": list(suite.BENCHMARKS),
                                                                  "packs": {str(folder): pack.digest}}
    before = pack_digest(folder)
    (folder / "images" / "00000.png").write_bytes((folder / "images" / "00001.png").read_bytes())
    assert pack_digest(folder) != before  # changed images change the identifiers


def test_bad_packs_are_clear_errors(tmp_path, no_model):
    with pytest.raises(PackError, match="not a directory"):
        read_pack(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackError, match="missing pack.json"):
        read_pack(tmp_path / "empty")
    with pytest.raises(PackError, match="at least 2 repetitions"):
        random_pack(tmp_path / "single", reps=1)

    def broken(name, edit):
        folder, _ = random_pack(tmp_path / name)
        edit(folder)
        return folder

    def set_meta(**changes):
        def edit(folder):
            meta = json.loads((folder / "pack.json").read_text())
            (folder / "pack.json").write_text(json.dumps({**meta, **changes}))
        return edit

    def edit_assembly(change):
        def edit(folder):
            with xr.open_dataarray(folder / "assembly.nc") as opened:
                data = change(opened.load())
            (folder / "assembly.nc").unlink()
            data.to_netcdf(folder / "assembly.nc")
        return edit

    cases = {
        "missing assembly.nc": lambda f: (f / "assembly.nc").unlink(),
        "not valid JSON": lambda f: (f / "pack.json").write_text("{"),
        "region 'MT' is not one of V1, V2, V4, IT": set_meta(region="MT"),
        r"pack.json: missing region": lambda f: (f / "pack.json").write_text(json.dumps({"name": "x"})),
        "metric 'r2' must be one or more of pls, rdm": set_meta(metric="r2"),
        "1 image file.* missing, e.g. images/00003.png": lambda f: (f / "images" / "00003.png").unlink(),
        "stimuli.csv: missing column 'object_name'": lambda f: pd.read_csv(f / "stimuli.csv").drop(
            columns="object_name").to_csv(f / "stimuli.csv", index=False),
        "missing coordinate 'repetition' on presentation": edit_assembly(lambda d: d.drop_vars("repetition")),
        "missing coordinate 'subject' on neuroid": lambda f: (set_meta(metric=["pls", "rdm"])(f),
                                                              edit_assembly(lambda d: d.drop_vars("subject"))(f)),
        r"region coordinate \['IT'\] does not match pack.json's 'V4'": edit_assembly(
            lambda d: d.assign_coords(region=("neuroid", ["IT"] * 6))),
        "dims must be \\(presentation, neuroid\\)": edit_assembly(lambda d: d.rename(neuroid="unit")),
        "1 without responses \\(e.g. 'im5'\\)": edit_assembly(lambda d: d.isel(
            presentation=d["stimulus_id"].values != "im5")),
    }
    for i, (message, edit) in enumerate(cases.items()):
        folder = broken(f"bad{i}", edit)
        with pytest.raises(PackError, match=message):
            load_pack(folder)
    # the suite stops at a bad pack before loading benchmarks or building a model
    with pytest.raises(PackError, match="missing pack.json"):
        suite.run(subject(), options(packs=[tmp_path / "empty"]))
