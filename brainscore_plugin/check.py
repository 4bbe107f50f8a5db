"""``python -m brainscore_plugin check DIR``: would Brain-Score accept and load this plugin folder?

1. ``metadata.yml`` passes Brain-Score's own contract (``brainscore_core.metadata.contract``);
2. no file in the folder is above ``MAX_FILE_BYTES`` (weights belong on a hub or URL);
3. every ``requirements.txt`` line installs on Brain-Score's servers (``requirements.py``);
4. ``__init__.py`` registers its models as literal ``model_registry['<id>']`` lines;
5. then, in a subprocess whose ``sys.path`` holds no part of this checkout, each model
   loads through ``brainscore_vision.load_model`` from a copy of the installed
   ``brainscore_vision`` whose ``models/`` holds only this plugin, and answers ``look_at``.

The load runs only when 1-4 pass, with ``BS_INSTALL_DEPENDENCIES=no`` (``brainscore_plugin``'s
default, not the caller's value): requirements are checked, not installed.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from .metadata import MetadataError, validate
from .requirements import requirement_problems

MAX_FILE_BYTES = 1_000_000
#: Seconds the load subprocess may take (it imports torch and brainscore and builds each model).
LOAD_TIMEOUT_S = 900

LOAD_SCRIPT = '''
import json, sys
import brainscore_plugin  # before brainscore_vision: requirements are not installed
import brainscore_vision, tdsnn
from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet
import pandas as pd
ids, paths = json.loads(sys.argv[1]), json.loads(sys.argv[2])
stimuli = StimulusSet(pd.DataFrame({"stimulus_id": list(paths), "object_name": ["o"] * len(paths)}))
stimuli.stimulus_paths = paths
stimuli.identifier = "tdsnn.check." + "-".join(ids)
for identifier in ids:
    model = brainscore_vision.load_model(identifier)
    assert model.identifier == identifier, (model.identifier, identifier)
    model.start_recording("IT", [(70, 170)])
    rates = model.look_at(stimuli)
    print("LOADED", json.dumps({"identifier": identifier, "shape": list(rates.shape),
                                "visual_degrees": model.visual_degrees(), "tdsnn": tdsnn.__file__}))
'''


class CheckInputError(ValueError):
    """A path that is not a plugin folder at all."""


def overlay_site(root: Path, plugins: list[Path]) -> Path:
    """A site folder under ``root`` whose ``brainscore_vision`` links every part of the installed
    one except ``models/``, which holds only ``plugins``; ``model_helpers/`` is a real folder
    of links (so callers can add files to it). Returns the site folder."""
    import brainscore_vision

    installed = Path(brainscore_vision.__file__).parent
    package = root / "site" / "brainscore_vision"
    package.mkdir(parents=True)
    for child in installed.iterdir():
        if child.name not in ("models", "model_helpers", "__pycache__"):
            (package / child.name).symlink_to(child)
    (package / "models").mkdir()
    for plugin in plugins:
        (package / "models" / plugin.name).symlink_to(plugin.resolve())
    helpers = package / "model_helpers"
    helpers.mkdir()
    for child in (installed / "model_helpers").iterdir():
        if child.name != "__pycache__":
            (helpers / child.name).symlink_to(child)
    return root / "site"


def registered_ids(init_py: Path) -> list[str]:
    """Identifiers of the ``model_registry[<literal>] = ...`` lines of a plugin's ``__init__.py``."""
    ids = []
    for node in ast.walk(ast.parse(init_py.read_text())):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and getattr(target.value, "id", None) == "model_registry" \
                        and isinstance(target.slice, ast.Constant) and isinstance(target.slice.value, str):
                    ids.append(target.slice.value)
    return ids


def static_problems(folder: Path) -> tuple[list[str], list[str]]:
    """``(problems, registered identifiers)`` of checks 1-4."""
    problems = []
    metadata = [p for p in (folder / "metadata.yml", folder / "metadata.yaml") if p.is_file()]
    if not metadata:
        problems.append("no metadata.yml: Brain-Score's website needs one (schema 2.0)")
    for path in metadata:
        try:
            validate(path.read_text())
        except MetadataError as err:
            problems.append(f"{path.name}: {err}")
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
            problems.append(f"{path.relative_to(folder)} is {path.stat().st_size / 1e6:.1f} MB; upstream plugins "
                            f"carry no file above {MAX_FILE_BYTES / 1e6:g} MB: host it "
                            "(export --weights-hub or --weights-url)")
    requirements = folder / "requirements.txt"
    if requirements.is_file():
        problems += requirement_problems(requirements.read_text().splitlines())
    else:
        problems.append("no requirements.txt: Brain-Score would not install tdsnn")
    init_py, ids = folder / "__init__.py", []
    if not init_py.is_file():
        problems.append("no __init__.py: Brain-Score finds models by their model_registry lines there")
    else:
        try:
            ids = registered_ids(init_py)
            if not ids:
                problems.append("__init__.py registers no model (no model_registry['<id>'] = ... line)")
        except SyntaxError as err:
            problems.append(f"__init__.py does not parse: {err}")
    return problems, ids


def _images(directory: Path, n: int = 3) -> dict[str, str]:
    rng = np.random.default_rng(0)
    paths = {}
    for i in range(n):
        path = directory / f"check{i}.png"
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(path)
        paths[f"check{i}"] = str(path)
    return paths


def load_problems(folder: Path, ids: list[str]) -> tuple[list[str], list[dict]]:
    """``(problems, one summary per loaded model)`` of check 5."""
    with tempfile.TemporaryDirectory(prefix="tdsnn-check-") as tmp:
        root = Path(tmp)
        site = overlay_site(root, [folder])
        env = {k: v for k, v in os.environ.items() if k != "BS_INSTALL_DEPENDENCIES"}
        env.update(PYTHONPATH=str(site), PYTHONSAFEPATH="1")
        env.setdefault("RESULTCACHING_DISABLE", "1")
        command = [sys.executable, "-c", LOAD_SCRIPT, json.dumps(ids), json.dumps(_images(root))]
        try:
            done = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True,
                                  timeout=LOAD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return [f"loading through brainscore_vision.load_model took over {LOAD_TIMEOUT_S} s"], []
    loaded = [json.loads(line.split(" ", 1)[1]) for line in done.stdout.splitlines() if line.startswith("LOADED ")]
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
        return [f"brainscore_vision.load_model failed: {last}"], loaded
    return [], loaded


def check_plugin(folder: str | Path, out=sys.stdout) -> int:
    """Run the checks on ``folder``, printing one line each; 0 when all pass, else 1."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckInputError(f"{folder} is not a plugin folder")
    problems, ids = static_problems(folder)
    if not problems:
        print(f"ok: metadata, file sizes, requirements; registers {', '.join(ids)}", file=out)
        problems, loaded = load_problems(folder, ids)
        for model in loaded:
            print(f"ok: brainscore_vision.load_model({model['identifier']!r}) looks at images -> {model['shape']}, "
                  f"visual degrees {model['visual_degrees']} (tdsnn from {model['tdsnn']})", file=out)
    else:
        print("load through brainscore_vision.load_model not attempted: fix the problems below first", file=out)
    for problem in problems:
        print(f"FAIL: {problem}", file=out)
    return 1 if problems else 0
