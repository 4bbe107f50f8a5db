"""The Brain-Score suite (harness/suites/brainscore.py, its benchmark list and
harness/brainscore_env.py) and local neural-data packs: offline, registered benchmarks
become unavailable entries within seconds; a planted-signal pack scores through
Brain-Score's own benchmark classes."""
import json
import socket
import threading
import time
from types import SimpleNamespace

import pytest
import torch

from harness import brainscore_env
from harness.neural_pack import PackError, make_demo_pack, pack_digest
from harness.suites import benchmark_list
from harness.suites import brainscore as suite
from harness.suites.keys import BRAINSCORE
from tdsnn import network
from tdsnn.regions import REGIONS

REGION_KEYS = set(BRAINSCORE.values())


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
def fresh_preflight():
    network.forget()
    yield
    network.forget()


def test_default_list_is_registered_and_mapped_to_regions():
    benchmarks = benchmark_list.BENCHMARKS
    benchmark_list.check_benchmarks(list(benchmarks))  # every id exists in the installed brainscore_vision
    counts = {r: sum(v == r for v in benchmarks.values()) for r in REGIONS}
    assert counts == {"V1": 17, "V2": 2, "V4": 2, "IT": 2}
    assert sum(i.startswith("Marques2020_") for i in benchmarks) == 15
    assert benchmark_list.region_of("MajajHong2015.IT-pls") == "IT" and benchmark_list.region_of("Foo.bar") == "other"
    with pytest.raises(KeyError, match=r"unknown benchmark\(s\) Tong.Coggan2024_fMRI.V1-rdm; registered: "):
        benchmark_list.check_benchmarks(["Tong.Coggan2024_fMRI.V1-rdm"])  # ids are case-sensitive
    # a placeholder in a plugin's docstring (laion_fmri: "benchmark_registry['<identifier>']") is no benchmark
    assert all(i[0].isalnum() and "<" not in i for i in benchmark_list.registered_benchmarks())
    with pytest.raises(KeyError, match="unknown benchmark"):
        benchmark_list.check_benchmarks(["<identifier>"])


def test_offline_registered_benchmarks_are_unavailable_within_seconds(use_registry, no_model, fresh_preflight):
    if network.probe(network.host_url("brainscore-storage.s3.amazonaws.com")) is None:
        pytest.skip("S3 answers here: this test needs a machine without network")
    start = time.perf_counter()
    result = suite.run(subject(), options())
    elapsed = time.perf_counter() - start
    assert elapsed < 60, f"offline run took {elapsed:.1f} s"
    assert result.metrics == {}
    assert set(result.unavailable) == set(benchmark_list.BENCHMARKS) | REGION_KEYS
    for benchmark in benchmark_list.BENCHMARKS:
        why = result.unavailable[benchmark]
        assert why.startswith("S3 unreachable (") and why.endswith("brainscore-storage.s3.amazonaws.com"), why
        assert "\n" not in why and len(why) < 200
    assert result.unavailable[BRAINSCORE["V1"]].startswith("none of its 17 benchmark(s) could be scored")
    assert result.details["averaged"]["IT"] == ["MajajHong2015public.IT-pls", "tong.Coggan2024_fMRI.IT-rdm"]
    assert list(result.details["preflight"]) == ["brainscore-storage.s3.amazonaws.com"]  # one host, probed once
    json.dumps(result.to_json())  # JSON-serialisable

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

    monkeypatch.setattr(network, "PROBE_TIMEOUT_S", 1.0)
    probes, probe = [], network.probe
    monkeypatch.setattr(network, "probe", lambda *a: probes.append(a) or probe(*a))
    with SilentServer() as server:  # like a network that drops packets: boto3 would wait minutes
        fetcher = BotoFetcher(f"https://127.0.0.1:{server.port}/bucket/assy_x.nc", "tdsnn-test-missing")
        start = time.perf_counter()
        with brainscore_env.s3_preflight(), pytest.raises(brainscore_env.S3Unreachable,
                                                          match=r"^S3 unreachable \(.+\): 127\.0\.0\.1$"):
            fetcher.fetch()
        assert time.perf_counter() - start < 3
        with brainscore_env.s3_preflight(), pytest.raises(brainscore_env.S3Unreachable):
            fetcher.fetch()
        assert probes == [(f"https://127.0.0.1:{server.port}/",)]  # probed once, then remembered
    assert BotoFetcher.download_boto.__qualname__ == "BotoFetcher.download_boto"  # unpatched afterwards

    cached = BotoFetcher("https://brainscore-storage.s3.amazonaws.com/b/assy_cached.nc", "tdsnn-test-cached")
    open(cached.output_filename, "w").close()
    with brainscore_env.s3_preflight():
        assert cached.fetch() == cached.output_filename  # data in $BRAINIO_HOME: no network, no preflight
    assert len(probes) == 1


def test_reason_is_one_line():
    boto_like = Exception([RuntimeError("Unable to locate credentials"), RuntimeError(
        'Could not connect to the endpoint URL: "https://brainscore-storage.s3.amazonaws.com/x/assy_y.nc"')])
    reason = brainscore_env.reason
    assert reason(boto_like) == "S3 unreachable (EndpointConnectionError): brainscore-storage.s3.amazonaws.com"
    assert reason(ValueError("first line\nsecond line")) == "ValueError: first line"
    try:
        try:
            raise brainscore_env.S3Unreachable("S3 unreachable (x): host")
        except brainscore_env.S3Unreachable as inner:
            raise Exception([inner]) from inner
    except Exception as outer:  # noqa: BLE001
        assert reason(outer) == "S3 unreachable (x): host"


def test_planted_pack_scores_clearly_above_its_shuffled_control(use_registry, tmp_path, monkeypatch):
    planted = make_demo_pack(tmp_path / "planted", "sresnet18.tiny", seed=1)
    control = make_demo_pack(tmp_path / "control", "sresnet18.tiny", seed=1, shuffled=True)
    built = []
    original = suite.brain_model_of
    monkeypatch.setattr(suite, "brain_model_of", lambda *a: built.append(1) or original(*a))
    result = suite.run(subject("sresnet18.tiny"), options(benchmarks=[], packs=[planted, control]))
    assert len(built) == 1  # one model for all packs
    assert result.details["reused_responses"] == 2  # each pack's RDM benchmark reuses its PLS responses
    assert result.unavailable == {}
    metrics, scores = result.metrics, result.details["scores"]
    assert set(metrics) == {"local:planted", "local:planted:rdm", "local:control", "local:control:rdm"}
    assert scores["local:planted"]["raw"] > 0.5 and scores["local:control"]["raw"] < 0.2, scores
    assert metrics["local:planted"] > metrics["local:control"] + 0.3
    assert scores["local:planted:rdm"]["raw"] > scores["local:control:rdm"]["raw"] + 0.2
    for key in metrics:
        assert 0.5 < scores[key]["ceiling"] <= 1  # repetitions are consistent in both packs
    assert scores["local:planted"]["identifier"].startswith("local.planted-") and \
        scores["local:planted"]["identifier"].endswith(".IT-pls")
    assert not REGION_KEYS & set(metrics)  # local packs are not averaged into the public region scores
    json.dumps(result.to_json())


def test_settings_hold_pack_digests_and_a_bad_pack_stops_the_suite(tmp_path, no_model):
    """The pack format itself is tested in test_neural_pack.py."""
    folder = make_demo_pack(tmp_path / "p", lambda images: images.flatten(1).numpy())
    assert suite.settings(subject(), options(packs=[folder])) == {
        "benchmarks": list(benchmark_list.BENCHMARKS), "packs": {str(folder): pack_digest(folder)}}
    (tmp_path / "empty").mkdir()
    # the suite stops at a bad pack before loading benchmarks or building a model
    with pytest.raises(PackError, match="missing pack.json"):
        suite.run(subject(), options(packs=[tmp_path / "empty"]))
