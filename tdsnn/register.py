"""Register a trained model: weights file, model card and ``model_registry.yaml`` entry.

    python -m tdsnn.register runs/tsresnet18-fmnist --tag fmnist [--default] [--half]

Reads ``RUN/train/final.safetensors`` (and the run's ``config.yaml``, ``command.txt`` and
metrics), writes ``weights/<arch>.<tag>.safetensors`` (float16 with ``--half``; without the
STC clusters, which loading resamples from the positions),
measures test accuracy on the data tag's test split and the V1 (layer2.0) orientation
smoothness on the TDANN sine gratings, writes ``weights/<arch>.<tag>.md`` and records the
variant (config, weights path and sha256, data tag) in the registry. ``harness`` and
``brainscore_plugin`` then find it as ``<arch>.<tag>``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from . import registry
from .analysis.accuracy import top1_accuracy
from .analysis.maps import orientation_smoothness
from .analysis.responses import block_rates
from .checkpoint import CheckpointError, atomic_write, load_state, read_checkpoint, save_model
from .data import DataSpec, build_dataset
from .registry import build
from .sheets import model_sheet
from .stimuli import sine_gratings

V1_BLOCK = "layer2.0"


def run_summary(run: Path) -> dict[str, Any]:
    """Command, epochs and wall time (all stages) of a ``tdsnn-train`` output folder."""
    seconds, epochs = 0.0, {}
    for stage in ("aux", "train"):
        metrics = run / stage / "metrics.jsonl"
        if metrics.exists():
            rows = [json.loads(line) for line in metrics.read_text().splitlines()]
            seconds += sum(r["seconds"] for r in rows)
            epochs[stage] = len(rows)
    swap = run / "swap" / "stage.json"
    if swap.exists():
        seconds += sum(layer["seconds"] for layer in json.loads(swap.read_text())["layers"].values())
    command = (run / "command.txt").read_text().strip() if (run / "command.txt").exists() else None
    return {"command": command, "epochs": epochs, "train_seconds": seconds,
            "config": yaml.safe_load((run / "config.yaml").read_text())}


def evaluate(model, data: str, device: str = "cpu") -> dict[str, Any]:
    """Test accuracy (%) on ``data``'s evaluation split and layer2.0 orientation smoothness."""
    spec = DataSpec.parse(data)
    size = model.config.input_size
    accuracy = top1_accuracy(model, build_dataset(spec, size, train=False), device=device)
    images, meta = sine_gratings(size)
    rates = block_rates(model, images, spec.preprocessing(size), [V1_BLOCK], device=device)[V1_BLOCK]
    positions = model_sheet(model, V1_BLOCK).positions
    smooth = orientation_smoothness(rates.numpy(), meta, positions.numpy())
    return {"test_accuracy": accuracy, "v1_orientation_smoothness": float(smooth["smoothness"]),
            "v1_orientation_smoothness_chance": float(smooth["chance"]),
            "v1_units_used": int(smooth["mask"].sum())}


CARD = """# {name}

{description}

| | |
|---|---|
| architecture | `{arch}` ({kind}) |
| options | `{options}` |
| training data | `{data}` |
| epochs | {epochs} |
| wall time | {hours:.2f} h on {device} |
| test accuracy | **{test_accuracy:.2f} %** ({data} test split) |
| V1 (layer2.0) orientation smoothness | **{smooth:.3f}** (shuffled-distance chance {chance:.3f}, {units} most tuned units) |
| weights | `{weights}` ({dtype}), sha256 `{sha256}` |

Trained with:

```
{command}
```

Measured with:

```
python -m tdsnn.register {run} --tag {tag}{flags}
```

Smoothness follows TDANN: preferred orientation (argmax of the tuning curve over the 640
sine gratings at {size} px), units above the 75th percentile of tuning peak-to-peak,
|Δ preference| against cortical distance up to 3.3 mm, (max − first bin) / max.
{positions_note}
"""


def write_card(path: Path, **fields) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(CARD.format(**fields)))


def register(run: Path, tag: str, default: bool, half: bool, device: str = "cpu") -> dict[str, Any]:
    final = run / "train" / "final.safetensors"
    if not final.exists():
        raise CheckpointError(f"{final} not found: the run has not finished its train stage")
    config, state = read_checkpoint(final)
    model = build(config)
    load_state(model, state, str(final))
    summary = run_summary(run)
    name = f"{config.arch}.{tag}"
    weights_dir = registry.REGISTRY_PATH.parent / "weights"
    weights_path = weights_dir / f"{name}.safetensors"
    sha = save_model(model, weights_path, half=half, clusters=False)  # clusters: training state only
    stored = build(config)  # score exactly what is stored (float16 weights when --half)
    load_state(stored, read_checkpoint(weights_path, sha)[1], str(weights_path))
    data = summary["config"]["data"]
    started = time.monotonic()
    metrics = evaluate(stored, data, device)
    print(f"{name}: test accuracy {metrics['test_accuracy']:.2f} %, layer2.0 orientation smoothness "
          f"{metrics['v1_orientation_smoothness']:.3f} (chance {metrics['v1_orientation_smoothness_chance']:.3f}) "
          f"[{time.monotonic() - started:.0f} s]")
    defaults = registry.architecture_config(config.arch).to_dict()
    overrides = {k: v for k, v in config.to_dict().items() if k != "arch" and v != defaults[k]}
    write_card(
        weights_dir / f"{name}.md", name=name, arch=config.arch,
        description=f"`{config.arch}` trained on `{data}` with `tdsnn-train`.",
        kind=f"spiking, T = {config.timesteps}" if config.timesteps else "ANN", options=json.dumps(overrides),
        data=data, epochs=", ".join(f"{n} ({s})" for s, n in summary["epochs"].items()),
        hours=summary["train_seconds"] / 3600, device=device, test_accuracy=metrics["test_accuracy"],
        smooth=metrics["v1_orientation_smoothness"], chance=metrics["v1_orientation_smoothness_chance"],
        units=metrics["v1_units_used"], weights=f"weights/{weights_path.name}",
        dtype="float16" if half else "float32", sha256=sha, command=summary["command"] or "(not recorded)",
        run=run, tag=tag, flags=(" --default" if default else "") + (" --half" if half else ""),
        size=config.input_size,
        positions_note=("Positions are the model's own swap-optimized cortical sheet." if hasattr(stored, "sheets")
                        else "The model has no sheet; positions are the initial retinotopic sheet a TSResNet18 of "
                             "the same size gets (`tdsnn.sheets.model_sheet`)."))
    entry = {"config": overrides, "data": data,
             "weights": {"path": f"weights/{weights_path.name}", "sha256": sha}, "metrics": metrics}
    if default:
        entry["default"] = True
    update_registry(name, entry, default)
    return entry


def update_registry(name: str, entry: dict[str, Any], default: bool) -> None:
    """Set ``variants[name]`` in the registry, keeping its comments (ruamel round-trip)."""
    yaml_rt = YAML()
    path = registry.REGISTRY_PATH
    data = yaml_rt.load(path.read_text())
    variants = data.get("variants") or {}
    arch = name.split(".")[0]
    if default:
        for other, spec in variants.items():
            if other.split(".")[0] == arch and other != name:
                spec.pop("default", None)
    variants[name] = json.loads(json.dumps(entry))
    data["variants"] = variants

    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            yaml_rt.dump(data, fh)
    atomic_write(path, write)
    registry._read_registry.cache_clear()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tdsnn.register", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a tdsnn-train output folder")
    parser.add_argument("--tag", required=True, help="variant tag, e.g. fmnist")
    parser.add_argument("--default", action="store_true", help="make it what the bare architecture name resolves to")
    parser.add_argument("--half", action="store_true", help="store float16 weights")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        register(args.run, args.tag, args.default, args.half, args.device)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"tdsnn.register: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
