"""Local neural-data packs (harness/neural_pack/): the format round-trips, and a pack that
breaks it (a missing or malformed file, column or coordinate, a path out of the pack, a
NaN or inf) is a clear ``PackError`` at load time that reads nothing outside the pack."""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from harness import score
from harness.neural_pack import PackError, load_pack, pack_digest, read_pack, write_pack


class _Opens:
    """Paths opened for reading from Python while a test holds the ``opened`` fixture (an
    audit hook: it sees ``open``, ``Path.read_bytes``, pandas and PIL, not C libraries such
    as netCDF)."""
    active = None


def _record_open(event, args):
    if event == "open" and _Opens.active is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        path, mode, flags = args
        if (mode is None and not flags & (os.O_WRONLY | os.O_RDWR)) or (mode is not None and "r" in mode):
            _Opens.active.append(Path(os.fsdecode(path)).resolve())


sys.addaudithook(_record_open)


@pytest.fixture
def opened():
    _Opens.active = []
    yield _Opens.active
    _Opens.active = None


def random_pack(folder, n=24, reps=3, k=6, responses=None, **kwargs):
    rng = np.random.default_rng(0)
    images = torch.rand(n, 3, 16, 16)
    meta = pd.DataFrame({"stimulus_id": [f"im{i}" for i in range(n)], "object_name": [f"c{i % 3}" for i in range(n)]})
    responses = rng.standard_normal((reps, n, k)) if responses is None else responses
    return write_pack(folder, images, meta, responses, region="V4", subjects=["a", "a", "a", "b", "b", "b"],
                      **kwargs), responses


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


def edit_stimuli(change):
    def edit(folder):
        table = pd.read_csv(folder / "stimuli.csv", dtype=str)
        change(table)
        table.to_csv(folder / "stimuli.csv", index=False)
    return edit


def set_response(index, value):
    def change(data):
        values = data.values.copy()
        values[index] = value
        return data.copy(data=values)
    return edit_assembly(change)


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
    assert set(map(Path, pack.stimulus_set.stimulus_paths.values())) == set((folder / "images").resolve().iterdir())
    before = pack_digest(folder)
    (folder / "images" / "00000.png").write_bytes((folder / "images" / "00001.png").read_bytes())
    assert pack_digest(folder) != before  # changed images change the identifiers


def test_bad_packs_are_clear_errors(tmp_path):
    with pytest.raises(PackError, match="not a directory"):
        read_pack(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackError, match="missing pack.json"):
        read_pack(tmp_path / "empty")
    with pytest.raises(PackError, match="at least 2 repetitions"):
        random_pack(tmp_path / "single", reps=1)

    cases = {
        "missing assembly.nc": lambda f: (f / "assembly.nc").unlink(),
        "not valid JSON": lambda f: (f / "pack.json").write_text("{"),
        "region 'MT' is not one of V1, V2, V4, IT": set_meta(region="MT"),
        r"pack.json: missing region": lambda f: (f / "pack.json").write_text(json.dumps({"name": "x"})),
        "metric 'r2' must be one or more of pls, rdm": set_meta(metric="r2"),
        "1 image file.* missing, e.g. images/00003.png": lambda f: (f / "images" / "00003.png").unlink(),
        "stimuli.csv: missing column 'object_name'": edit_stimuli(lambda t: t.drop(columns="object_name", inplace=True)),
        "stimuli.csv: empty values in column\\(s\\) 'object_name'": edit_stimuli(
            lambda t: t.__setitem__("object_name", t["object_name"].where(t["stimulus_id"] != "im2"))),
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
        folder, _ = random_pack(tmp_path / f"bad{i}")
        edit(folder)
        with pytest.raises(PackError, match=message):
            load_pack(folder)


def test_pack_names_follow_the_one_name_pattern(tmp_path):
    """Pack names are one part of tdsnn.names (they enter benchmark identifiers
    ``local.<name>-<sha8>.<region>-<metric>``): no upper case, no dots."""
    folder, _ = random_pack(tmp_path / "ok_pack-1")
    assert read_pack(folder).name == "ok_pack-1"
    for name in ("My.Pack", "a.b", "Pack", "-x", "a/b"):
        set_meta(name=name)(folder)
        with pytest.raises(PackError, match=rf"pack.json: invalid pack name {name!r}: use lower-case letters"):
            read_pack(folder)
    with pytest.raises(PackError, match="invalid pack name 'MyPack'"):
        random_pack(tmp_path / "MyPack")  # the default name is the folder's
    assert not (tmp_path / "MyPack").exists()  # refused before anything is written


@pytest.mark.parametrize("named", ["../secret.png", "images/../../secret.png", "ABSOLUTE", "/etc/passwd", "LINK"])
def test_a_path_out_of_the_pack_is_refused_unread(tmp_path, opened, named):
    secret = tmp_path / "secret.png"
    secret.write_bytes((random_pack(tmp_path / "source")[0] / "images" / "00000.png").read_bytes())
    folder, _ = random_pack(tmp_path / "pack")
    if named == "LINK":
        (folder / "images" / "link.png").symlink_to(secret)
        named = "images/link.png"
    named = str(secret) if named == "ABSOLUTE" else named
    edit_stimuli(lambda t: t.__setitem__("filename", t["filename"].where(t["stimulus_id"] != "im3", named)))(folder)
    outside = {secret.resolve(), Path("/etc/passwd").resolve()}
    opened.clear()

    with pytest.raises(PackError, match=rf"pack/stimuli.csv: '{named}' lies outside the pack folder"):
        load_pack(folder)
    digest = pack_digest(folder)
    secret.write_bytes(b"changed")
    assert pack_digest(folder) == digest  # the file outside is not part of the pack's identity
    assert folder.resolve() / "stimuli.csv" in opened  # the hook sees the pack's reads
    assert not outside & set(opened), "a file outside the pack was read"


def test_pack_files_linked_out_of_the_pack_are_refused(tmp_path, opened):
    folder, _ = random_pack(tmp_path / "pack")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for file in ("assembly.nc", "stimuli.csv", "pack.json"):
        (folder / file).rename(elsewhere / file)
        (folder / file).symlink_to(elsewhere / file)
        opened.clear()
        with pytest.raises(PackError, match=rf"pack: '{file}' lies outside the pack folder"):
            read_pack(folder)
        assert not {p for p in opened if p.is_relative_to(elsewhere.resolve())}
        (folder / file).unlink()
        (elsewhere / file).rename(folder / file)
    assert read_pack(folder).name == "pack"


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_pack_with_nan_or_inf_responses_is_refused_at_load(tmp_path, value):
    folder, _ = random_pack(tmp_path / "pack")
    with xr.open_dataarray(folder / "assembly.nc") as data:
        row = int(np.flatnonzero(data["stimulus_id"].values == "im3")[0])
    set_response((row, 2), value)(folder)
    with pytest.raises(PackError, match=rf"assembly.nc: 1 of 432 responses are NaN or infinite \(the first at "
                                        rf"stimulus_id 'im3', neuroid_id 'n0002': {value}\); responses must be finite"):
        load_pack(folder)


def test_nan_or_inf_in_pack_json_or_stimuli_is_refused(tmp_path):
    cases = {"visual_degrees must be a positive finite number, got nan": set_meta(visual_degrees=float("nan")),
             "visual_degrees must be a positive finite number, got True": set_meta(visual_degrees=True),
             r"time_bin must be \[start_ms, end_ms\] \(finite, start < end\), got \[70, inf\]":
                 set_meta(time_bin=[70, float("inf")])}
    for i, (message, edit) in enumerate(cases.items()):
        folder, _ = random_pack(tmp_path / f"bad{i}")
        edit(folder)
        with pytest.raises(PackError, match=message):
            read_pack(folder)


def test_write_pack_refuses_non_finite_responses_before_writing(tmp_path):
    responses = np.random.default_rng(0).standard_normal((3, 24, 6))
    responses[1, 4, 5] = np.nan
    with pytest.raises(PackError, match=r"^responses: 1 of 432 responses are NaN or infinite \(the first at "
                                        r"repetition 1, stimulus_id 'im4', neuroid 5: nan\)"):
        random_pack(tmp_path / "pack", responses=responses)
    responses[1, 4, 5] = 1e39  # beyond float32, as stored: inf
    with pytest.raises(PackError, match="NaN or infinite"):
        random_pack(tmp_path / "pack", responses=responses)
    assert not (tmp_path / "pack").exists()


def test_score_cli_exits_2_on_a_bad_pack_before_any_work(tmp_path, capsys, monkeypatch):
    folder, _ = random_pack(tmp_path / "pack")
    set_response((0, 0), np.nan)(folder)
    out = tmp_path / "out"
    monkeypatch.setattr(score, "score_model", lambda *a: pytest.fail("score.py scored a model despite a bad pack"))
    status = score.main(["--model", "resnet18", "--compare", "", "--suites", "brainscore",
                         "--neural-data", str(folder), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert "assembly.nc: 1 of 432 responses are NaN or infinite" in err and err.count("\n") == 1, err
    assert not out.exists()
