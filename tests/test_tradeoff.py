"""tdsnn-sweep and the trade-off analysis: a tiny sweep end to end (interrupted, continued,
re-run, committed to a temporary git repository), the aux wiring, the report's figure,
matched-smoothness interpolation on hand-made numbers, and bad input."""
import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from harness import sweep as sweep_cli
from harness import tradeoff, tradeoff_figure
from harness.report import BASELINES
from harness.sweep_config import load_sweep, point_tag
from tdsnn import registry

ROOT = Path(__file__).resolve().parents[1]
TRAIN = {"data": "synthetic:32", "input_size": 32, "epochs": 1, "batch_size": 8, "workers": 0, "lr": 0.002,
         "device": "cpu", "model_options": {"width": 0.25, "sheet": {"n_clusters": 256}}}  # ImageNet stem: 512 V1 units
#: Two seeds of a baseline and a TopoNet, whose curve starts at that baseline (τ = 0): ANNs
#: keep the sweep within seconds per point.
FAMILIES = {"resnet18": {"seeds": [0, 1]}, "toponet_resnet18": {"strengths": [{"tau": 1}]}}
NAMES = ["resnet18.t-s0", "resnet18.t-s1", "toponet_resnet18.t-tau1-s0"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def write_sweep(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump({"name": "t", "description": "A tiny grid.", "train": TRAIN,
                                    "families": FAMILIES, **fields}, sort_keys=False))
    return path


def use_registry(monkeypatch, path: Path) -> None:
    monkeypatch.setattr(registry, "REGISTRY_PATH", path)
    monkeypatch.setenv("TDSNN_REGISTRY", str(path))
    registry._read_registry.cache_clear()


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file() and ".git" not in p.parts}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The tiny sweep in a temporary git repository holding the registry: stopped after
    one point, continued with --git-commit, then run once more."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo, runs = tmp_path_factory.mktemp("repo"), tmp_path_factory.mktemp("runs") / "t"
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "sweep@example.org")
    git(repo, "config", "user.name", "sweep test")
    reg = repo / "model_registry.yaml"
    shutil.copyfile(registry.PACKAGED_REGISTRY, reg)
    (repo / "notes.txt").write_text("first\n")
    git(repo, "add", "model_registry.yaml", "notes.txt")
    git(repo, "commit", "-q", "-m", "start")
    config = write_sweep(repo / "sweep.yaml")
    argv = [str(config), "--runs", str(runs)]
    with pytest.MonkeyPatch.context() as mp:
        use_registry(mp, reg)
        assert sweep_cli.main([*argv, "--max-points", "1"]) == 0
        first = json.loads((repo / "sweeps" / "t" / "tradeoff.json").read_text())
        first_log = git(repo, "log", "--format=%s").splitlines()
        (repo / "notes.txt").write_text("changed, not to be committed\n")
        (repo / "staged.txt").write_text("staged, not to be committed\n")
        git(repo, "add", "staged.txt")
        assert sweep_cli.main([*argv, "--git-commit"]) == 0
        before = snapshot(repo)
        runs_before = snapshot(runs)
        log = git(repo, "log", "--format=%s").splitlines()
        assert sweep_cli.main([*argv, "--git-commit"]) == 0
        yield SimpleNamespace(repo=repo, runs=runs, config=config, first=first, first_log=first_log, log=log,
                              before=before, after=snapshot(repo), runs_before=runs_before, runs_after=snapshot(runs),
                              log_after=git(repo, "log", "--format=%s").splitlines(),
                              summary=json.loads((repo / "sweeps" / "t" / "tradeoff.json").read_text()),
                              variants=yaml.safe_load(reg.read_text())["variants"])
    registry._read_registry.cache_clear()


def test_interrupted_sweep_stops_after_one_point_and_continues(study):
    assert [p["name"] for p in study.first["points"]] == ["resnet18.t-s0"]
    assert study.first["pending"] == NAMES[1:]
    assert study.first_log == ["start"]  # no --git-commit: nothing committed
    assert study.first["command"] == study.summary["command"].replace(" --git-commit", "")  # no --max-points
    assert sweep_cli.command_line(["s.yaml", "--max-points=2", "--git-commit"]) == "tdsnn-sweep s.yaml --git-commit"
    assert [p["name"] for p in study.summary["points"]] == NAMES
    assert study.summary["pending"] == []


def test_sweep_outputs_exist_and_agree(study):
    folder = study.repo / "sweeps" / "t"
    markdown = (folder / "tradeoff.md").read_text()
    assert (folder / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for point in study.summary["points"]:
        variant = study.variants[point["name"]]
        assert variant["sweep"] == "t"
        assert point["weights_sha256"] == variant["weights"]["sha256"]
        assert (study.repo / variant["weights"]["path"]).is_file()
        assert point["accuracy"] == pytest.approx(variant["metrics"]["test_accuracy"])  # suite == registration
        assert 0 <= point["accuracy"] <= 100
        assert point["seed"] == (1 if point["name"].endswith("s1") else 0)
        assert f"| `{point['name']}` | {point['family']} |" in markdown
        assert f"{point['accuracy']:.2f}" in markdown
        assert point["training"]["epochs"] == 1
    assert [p["strengths"] for p in study.summary["points"]] == [{}, {}, {"tau": 1.0}]
    baseline = study.summary["baselines"]["resnet18"]
    accuracies = [p["accuracy"] for p in study.summary["points"][:2]]
    assert baseline["seeds"] == [0, 1] and baseline["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert baseline["accuracy"]["std"] == pytest.approx(np.std(accuracies, ddof=1))
    curve = study.summary["curves"]["toponet_resnet18"]
    assert sorted(c["strengths"]["tau"] for c in curve) == [0.0, 1.0]  # τ = 0 is the resnet18 baseline
    assert next(c for c in curve if c["strengths"]["tau"] == 0)["source"] == "resnet18"
    assert all(p["v1_orientation_smoothness"] is not None for p in study.summary["points"])
    for point in study.summary["points"]:  # IT category smoothness beside V1, with its SEM and chance
        assert 0 <= point["it_category_smoothness_chance"] <= 1 and point["it_category_smoothness_sem"] >= 0
        assert f"{point['it_category_smoothness']:.3f} ± {point['it_category_smoothness_sem']:.3f} (SEM)" in markdown
    assert baseline["it_smoothness"]["n"] == 2
    level = study.summary["matched"]["level"]  # one topographic family: the top of its curve
    assert level == pytest.approx(max(c["smoothness"]["mean"] for c in curve))
    matched = study.summary["matched"]["families"]["toponet_resnet18"]
    top = max(curve, key=lambda c: c["smoothness"]["mean"])
    assert matched["accuracy"] == pytest.approx(top["accuracy"]["mean"])
    assert matched["baseline"] == "resnet18" and matched["baseline_accuracy"] == baseline["accuracy"]["mean"]
    assert "## Accuracy at matched V1 orientation smoothness" in markdown


def test_rerun_is_a_no_op(study):
    assert study.after == study.before  # same bytes, not even rewritten
    assert study.runs_after == study.runs_before  # nothing trained again, scores from the cache
    assert study.log_after == study.log


def test_git_commit_commits_exactly_each_points_files(study):
    new = study.log[:-1]
    assert study.log[-1] == "start" and len(new) == len(NAMES)
    assert new[-1] == "sweep t: 1 finished point"  # the point finished before --git-commit
    assert [m.removeprefix("sweep t: ") for m in reversed(new[:-1])] == NAMES[1:]
    trade = {f"sweeps/t/tradeoff.{ext}" for ext in ("json", "md", "png")}
    for i, name in enumerate(reversed(NAMES[1:])):
        files = set(git(study.repo, "show", "--name-only", "--format=", f"HEAD~{i}").split())
        point = {"model_registry.yaml", f"weights/{name}.safetensors", f"weights/{name}.md"}
        assert point | trade - {"sweeps/t/tradeoff.png"} <= files <= point | trade  # the figure when it changed
    status = git(study.repo, "status", "--porcelain")
    assert " M notes.txt" in status and "A  staged.txt" in status  # other changes stay uncommitted
    assert git(study.repo, "status", "--porcelain", "--", "model_registry.yaml", "weights", "sweeps") == ""


def test_aux_weights_are_the_registered_baseline(study, tmp_path, monkeypatch):
    repo, runs = tmp_path / "repo", tmp_path / "runs"
    shutil.copytree(study.repo, repo)
    shutil.copytree(study.runs, runs)
    use_registry(monkeypatch, repo / "model_registry.yaml")
    config = write_sweep(repo / "sweep.yaml", families={
        "resnet18": {"seeds": [0]}, "tsresnet18": {"strengths": [{"alpha": 1, "beta": 1}], "aux": "resnet18"}})
    seen = []

    def stop(cfg, resume, command, wait):
        seen.append((cfg, resume))
        raise sweep_cli.NonFiniteLoss("stopped by the test")

    monkeypatch.setattr(sweep_cli, "train_pipeline", stop)
    assert sweep_cli.main([str(config), "--runs", str(runs)]) == 3
    (cfg, resume), = seen  # resnet18.t-s0 is done: only the tsresnet18 point trains
    assert cfg.model == "tsresnet18" and resume
    assert cfg.aux_weights == str(registry.weights_file(registry.resolve("resnet18.t-s0")))
    assert cfg.model_options["stc"] == {"alpha": 1.0, "beta": 1.0}


def test_report_includes_the_trade_off_figure(study, tmp_path, monkeypatch):
    from harness.score import main as score_main

    use_registry(monkeypatch, study.repo / "model_registry.yaml")
    out = tmp_path / "score"
    assert score_main(["--model", "resnet18.t-s0", "--compare", "", "--suites", "accuracy", "--out", str(out),
                       "--no-progress"]) == 0
    assert (out / "figures" / "tradeoff-t.png").read_bytes() == (study.repo / "sweeps/t/tradeoff.png").read_bytes()
    assert 'src="figures/tradeoff-t.png"' in (out / "report.html").read_text()
    assert tradeoff_figure.report_figures([{"name": "resnet18"}], tmp_path / "none") == []  # not in a sweep


def curve(*points):
    return [{"strengths": {}, "seeds": [0], "source": "f", "smoothness": {"mean": s, "std": None, "n": 1},
             "accuracy": {"mean": a, "std": None, "n": 1}} for s, a in points]


def test_interpolation_at_matched_smoothness():
    assert tradeoff.interpolate(np.array([0.5, 0.1, 0.3]), np.array([84.0, 90.0, 88.0]), 0.4) == pytest.approx(86.0)
    assert tradeoff.interpolate(np.array([0.1, 0.3]), np.array([90.0, 88.0]), 0.35) is None  # no extrapolation
    curves = {"a": curve((0.1, 90.0), (0.3, 88.0), (0.5, 84.0)), "b": curve((0.05, 80.0), (0.25, 79.0))}
    assert tradeoff.matched_level(curves) == pytest.approx(0.25)  # the smaller of the two maxima
    result = tradeoff.matched(curves, {}, 0.25, chosen=False)
    assert result["families"]["a"]["accuracy"] == pytest.approx(88.5)
    assert result["families"]["b"]["accuracy"] == pytest.approx(79.0)
    assert result["families"]["a"]["range"] == [0.1, 0.5]
    assert tradeoff.matched_level({"a": curve((0.1, 90.0), (0.2, 89.0)), "b": curve((0.3, 80.0), (0.4, 79.0))}) \
        is None  # the curves do not overlap


def test_summary_on_hand_made_points(tmp_path):
    families = {**FAMILIES, "toponet_resnet18": {"strengths": [{"tau": 1}, {"tau": 4}]}}
    sweep = load_sweep(write_sweep(tmp_path / "sweep.yaml", families=families, matched_smoothness=0.3))
    rows = {"resnet18.t-s0": (80.0, 0.10), "resnet18.t-s1": (82.0, 0.12), "toponet_resnet18.t-tau1-s0": (79.0, 0.4),
            "toponet_resnet18.t-tau4-s0": (75.0, 0.2)}  # smoothness falls from τ 1 to τ 4
    records = [tradeoff.point_record(p, {"accuracy": rows[p.name][0], "accuracy_sem": None,
                                         "v1_orientation_smoothness": rows[p.name][1],
                                         "v1_orientation_smoothness_sem": 0.01,
                                         "v1_orientation_smoothness_chance": 0.05,
                                         "it_category_smoothness": rows[p.name][1] / 2}, "0" * 64, "k", None)
               for p in sweep.points]
    summary = tradeoff.summarize(sweep, records, [], "tdsnn-sweep sweep.yaml")
    assert summary["baselines"]["resnet18"]["accuracy"] == {"mean": 81.0, "std": pytest.approx(np.sqrt(2)), "n": 2}
    assert summary["baselines"]["resnet18"]["it_smoothness"]["mean"] == pytest.approx(0.055)
    topo = summary["matched"]["families"]["toponet_resnet18"]
    assert summary["matched"]["level"] == 0.3 and topo["accuracy"] == pytest.approx(77.0)
    assert topo["delta"] == pytest.approx(-4.0) and topo["range"] == [pytest.approx(0.11), 0.4]
    markdown = tradeoff.markdown(summary)
    assert "0.100 ± 0.010 (SEM)" in markdown and "| toponet_resnet18 | τ 0 (resnet18) | 2 |" in markdown
    assert "Level 0.300: matched_smoothness of the sweep file" in markdown and "| -4.00 |" in markdown
    curves = markdown.split("## Curves and baselines")[1]
    rows = [curves.index(f"\n| toponet_resnet18 | τ {tau}") for tau in (0, 1, 4)]
    assert rows == sorted(rows)  # the curve table reads in order of strength, not of smoothness
    assert tradeoff_figure.png(summary) == tradeoff_figure.png(summary)  # the same summary, the same bytes
    v1 = tradeoff_figure.draw(summary).axes[0]
    half_widths = {}  # x error bars drawn, by their centre: the one-seed points show their SEM
    for bars in v1.containers:
        for segments in bars.lines[2]:
            for (x0, y0), (x1, y1) in segments.get_segments():
                if y0 == y1:  # horizontal
                    half_widths[round((x0 + x1) / 2, 6)] = round((x1 - x0) / 2, 6)
    assert half_widths[0.4] == half_widths[0.2] == 0.01
    assert [c["smoothness"]["sem"] for c in summary["curves"]["toponet_resnet18"]] == [None, 0.01, 0.01]  # τ 0: 2 seeds
    assert half_widths[0.11] == pytest.approx(np.std([0.10, 0.12], ddof=1), abs=1e-6)  # the baseline: s.d. over seeds


def test_point_tags_and_the_study_file():
    assert point_tag("fmnist", {"alpha": 0.5, "beta": 0.0}, 0) == "fmnist-a0p5-b0-s0"
    assert point_tag("fmnist", {"tau": 10.0}, 1) == "fmnist-tau10-s1"
    assert point_tag("fmnist", {}, 2) == "fmnist-s2"
    study = load_sweep(ROOT / "configs" / "sweeps" / "fmnist.yaml")
    by_family = {}
    for point in study.points:
        by_family.setdefault(point.family, []).append(point)
    assert len({tuple(p.strengths.values()) for p in by_family["tsresnet18"] if any(p.strengths.values())}) >= 4
    for family in ("tsresnet18", "toponet_resnet18"):  # each curve starts at strength 0: its baseline
        assert BASELINES[family] in by_family or any(not any(p.strengths.values()) for p in by_family[family])
    assert len({p.strengths["tau"] for p in by_family["toponet_resnet18"]}) >= 4
    assert len({p.seed for p in by_family["sresnet18"]}) >= 2 and len({p.seed for p in by_family["resnet18"]}) >= 2
    assert {p.aux for p in by_family["tsresnet18"]} <= {f"sresnet18.fmnist-s{s}" for s in (0, 1)}
    assert [p.family for p in study.points][:4] == ["sresnet18"] * 2 + ["resnet18"] * 2  # baselines first


def test_a_strength_may_name_its_own_seeds(tmp_path):
    families = {"sresnet18": {"seeds": [0, 1]},
                "tsresnet18": {"strengths": [{"alpha": 1, "beta": 1}, {"alpha": 2, "beta": 2, "seeds": [0, 1]}],
                               "aux": "sresnet18"}}
    sweep = load_sweep(write_sweep(tmp_path / "sweep.yaml", families=families))
    assert [p.name for p in sweep.points if p.family == "tsresnet18"] == [
        "tsresnet18.t-a1-b1-s0", "tsresnet18.t-a2-b2-s0", "tsresnet18.t-a2-b2-s1"]
    assert [p.aux for p in sweep.points if p.family == "tsresnet18"] == [
        "sresnet18.t-s0", "sresnet18.t-s0", "sresnet18.t-s1"]
    assert [p.cfg.seed for p in sweep.points if p.family == "tsresnet18"] == [0, 0, 1]


BAD = {
    "unknown family": {"families": {"nonet": {"seeds": [0]}}},
    "τ = 0": {"families": {"toponet_resnet18": {"strengths": [{"tau": 0}]}}},
    "negative α": {"families": {"tsresnet18": {"strengths": [{"alpha": -1, "beta": 0}]}}},
    "α without β": {"families": {"tsresnet18": {"strengths": [{"alpha": 1}]}}},
    "strength as text": {"families": {"toponet_resnet18": {"strengths": [{"tau": "strong"}]}}},
    "repeated strength": {"families": {"toponet_resnet18": {"strengths": [{"tau": 1}, {"tau": 1.0}]}}},
    "strengths of a baseline": {"families": {"resnet18": {"strengths": [{"tau": 1}]}}},
    "repeated seed": {"families": {"resnet18": {"seeds": [0, 0]}}},
    "aux not in the sweep": {"families": {"tsresnet18": {"strengths": [{"alpha": 1, "beta": 1}], "aux": "sresnet18"}}},
    "strength seed the aux lacks": {"families": {"sresnet18": {"seeds": [0]}, "tsresnet18": {
        "strengths": [{"alpha": 1, "beta": 1, "seeds": [0, 1]}], "aux": "sresnet18"}}},
    "repeated strength seed": {"families": {"tsresnet18": {"strengths": [{"alpha": 1, "beta": 1, "seeds": [2, 2]}]}}},
    "unknown strength key": {"families": {"tsresnet18": {"strengths": [{"alpha": 1, "beta": 1, "seed": 1}]}}},
    "bad sweep name": {"name": "Bad Name"},
    "path as sweep name": {"name": "../x"},
    "bad family name": {"families": {"Res Net": {"seeds": [0]}}},
    "tag too long": {"name": "n" * 60},
    "unknown key": {"epochs": 3},
    "per-point option in train": {"train": {**TRAIN, "seed": 3}},
    "bad training option": {"train": {**TRAIN, "epochs": 0}},
    "bad model option": {"train": {**TRAIN, "model_options": {"stem": "huge"}}},
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sweep_files_exit_2_before_any_work(case, tmp_path, registry_copy, capsys):
    config = write_sweep(tmp_path / "sweep.yaml", **BAD[case])
    registry_text = registry_copy.read_text()
    assert sweep_cli.main([str(config), "--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tdsnn-sweep: ") and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_registry.yaml", "sweep.yaml"]
    assert registry_copy.read_text() == registry_text


@pytest.mark.parametrize("flags", [["--max-points", "-1"], ["--git-commit"], ["--train-only", "--git-commit"]])
def test_bad_flags_exit_2_before_any_work(flags, tmp_path, registry_copy, capsys):
    config = write_sweep(tmp_path / "sweep.yaml")  # tmp_path is not in a git work tree
    assert sweep_cli.main([str(config), "--runs", str(tmp_path / "runs"), *flags]) == 2
    assert capsys.readouterr().err.startswith("tdsnn-sweep: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_registry.yaml", "sweep.yaml"]


def test_train_only_beside_the_sweep(tmp_path, monkeypatch, capsys):
    """--train-only trains the free points and registers nothing; the sweep puts off a point
    another process is training, registers the points trained for it, and the put-off point
    once it is free."""
    from tdsnn.training.run_lock import hold_run

    reg = tmp_path / "model_registry.yaml"
    shutil.copyfile(registry.PACKAGED_REGISTRY, reg)
    use_registry(monkeypatch, reg)
    config, runs = write_sweep(tmp_path / "sweep.yaml"), tmp_path / "runs"
    argv = [str(config), "--runs", str(runs)]
    before = reg.read_text()
    with hold_run(runs / NAMES[0]):  # as another process training the first point
        assert sweep_cli.main([*argv, "--train-only"]) == 0
        out = capsys.readouterr().out
        assert f"{NAMES[0]}: skipped" in out and "Trained 2 points" in out
        assert reg.read_text() == before and not (tmp_path / "sweeps").exists()  # registered nothing
        assert not (runs / NAMES[0] / "config.yaml").exists()
        trained = {name: (runs / name / "train" / "final.safetensors").read_bytes() for name in NAMES[1:]}
        assert sweep_cli.main([*argv, "--max-points", "2"]) == 0
        assert f"{NAMES[0]}: put off" in capsys.readouterr().out
        summary = json.loads((tmp_path / "sweeps" / "t" / "tradeoff.json").read_text())
        assert [p["name"] for p in summary["points"]] == NAMES[1:] and summary["pending"] == NAMES[:1]
        for name, weights in trained.items():  # registered as trained, not trained again
            assert (runs / name / "train" / "final.safetensors").read_bytes() == weights
    registry._read_registry.cache_clear()
    assert sweep_cli.main(argv) == 0
    summary = json.loads((tmp_path / "sweeps" / "t" / "tradeoff.json").read_text())
    assert [p["name"] for p in summary["points"]] == NAMES and summary["pending"] == []
    registry._read_registry.cache_clear()


def test_dry_run_lists_the_points(tmp_path, registry_copy, capsys):
    config = write_sweep(tmp_path / "sweep.yaml")
    assert sweep_cli.main([str(config), "--runs", str(tmp_path / "runs"), "--dry-run"]) == 0
    assert capsys.readouterr().out.split() == [w for name in NAMES for w in ("pending", name)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_registry.yaml", "sweep.yaml"]


def test_a_session_inside_another_reuses_its_process_group(tmp_path, monkeypatch):
    import torch.distributed as dist

    from tdsnn.training.runtime import session

    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun: the inner session must not join again
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        with session("cpu") as rt:
            assert (rt.rank, rt.world) == (0, 2)
        assert dist.is_initialized()  # left to the session that joined it
    finally:
        dist.destroy_process_group()


def test_registry_variants_name_their_sweep(tmp_path):
    raw = yaml.safe_load(registry.PACKAGED_REGISTRY.read_text())
    raw["variants"] = {"resnet18.t-s0": {"sweep": "t"}}
    parsed = registry.parse_registry(yaml.safe_dump(raw), tmp_path / "model_registry.yaml")
    assert parsed.entries["resnet18.t-s0"].sweep == "t" and parsed.entries["resnet18"].sweep is None
    raw["variants"] = {"resnet18.t-s0": {"sweep": "../t"}}
    with pytest.raises(registry.RegistryError, match="sweep"):
        registry.parse_registry(yaml.safe_dump(raw), tmp_path / "model_registry.yaml")
