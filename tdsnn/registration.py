"""Register a trained model: weights file, model card and registry entry.

    python -m tdsnn.register runs/tsresnet18-fmnist --tag fmnist [--default] [--half]
    python -m tdsnn.register --remeasure tsresnet18.fmnist
    python -m tdsnn.register --from sresnet18.fmnist-s0 --tag fmnist [--default]

Reads ``RUN/train/final.safetensors`` (and the run's ``config.yaml``, ``command.txt`` and
metrics), stores the weights (float16 with ``--half``; without the STC clusters, which
loading resamples from the positions), measures test accuracy on the data tag's test split
and the V1 orientation smoothness (the architecture's registered V1 layer) on the TDANN
sine gratings, and records the variant (config, weights path and sha256, data tag, metrics)
in the registry in use (``tdsnn.registry.REGISTRY_PATH``), with the weights and the model
card ``<arch>.<tag>.md`` in the ``weights/`` folder beside it. ``harness`` and
``brainscore_plugin`` then find it as ``<arch>.<tag>``. ``--remeasure NAME`` measures a
registered variant again; ``--from NAME --tag TAG`` registers a registered variant's weights
file once more as ``<arch>.<TAG>`` (e.g. a sweep point as the demo variant), measured afresh.

Nothing is replaced until evaluation has succeeded: the weights and card are written to
temporary files first, and an interrupted or failed registration leaves the registered
weights, card and registry as they were. Bad arguments exit with status 2 before any work.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from . import registry
from .analysis.accuracy import top1_accuracy
from .analysis.maps import N_BOOT, V1_MAX_DIST_MM, orientation_smoothness
from .analysis.responses import block_rates
from .checkpoint import CheckpointError, atomic_write, load_state, read_checkpoint, save_model
from .data import DataError, DataSpec, build_dataset
from .names import check_model_name, check_part
from .registry import ModelEntry, build
from .sheets import model_sheet
from .stimuli import sine_gratings


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


def evaluate(model, data: str, v1_layer: str, device: str = "cpu") -> dict[str, Any]:
    """Test accuracy (%) on ``data``'s evaluation split and the orientation smoothness of
    ``v1_layer`` and its chance level, each with its standard error (``*_sem``: bootstrap
    over units and SEM over the shuffled samples, ``tdsnn.analysis.map_smoothness``). An
    empty evaluation split is a ``DataError``, not 0 % accuracy."""
    spec = DataSpec.parse(data)
    size = model.config.input_size
    test = build_dataset(spec, size, train=False)
    if len(test) == 0:
        raise DataError(f"the evaluation split of {data!r} holds no images")
    accuracy = top1_accuracy(model, test, device=device)
    images, meta = sine_gratings(size)
    rates = block_rates(model, images, spec.preprocessing(size), [v1_layer], device=device)[v1_layer]
    positions = model_sheet(model, v1_layer).positions
    smooth = orientation_smoothness(rates.numpy(), meta, positions.numpy())
    return {"test_accuracy": accuracy, "v1_orientation_smoothness": float(smooth["smoothness"]),
            "v1_orientation_smoothness_sem": float(smooth["smoothness_sem"]),
            "v1_orientation_smoothness_chance": float(smooth["chance"]),
            "v1_orientation_smoothness_chance_sem": float(smooth["chance_sem"]),
            "v1_units_used": int(smooth["mask"].sum())}


def summary_line(name: str, v1_layer: str, metrics: dict[str, Any]) -> str:
    """One line of ``evaluate``'s metrics for the terminal."""
    return (f"{name}: test accuracy {metrics['test_accuracy']:.2f} %, {v1_layer} orientation smoothness "
            f"{metrics['v1_orientation_smoothness']:.3f} ± {metrics['v1_orientation_smoothness_sem']:.3f} "
            f"(chance {metrics['v1_orientation_smoothness_chance']:.3f} ± "
            f"{metrics['v1_orientation_smoothness_chance_sem']:.3f})")


CARD = """# {name}

{description}

| | |
|---|---|
| architecture | `{arch}` ({kind}) |
| options | `{options}` |
| training data | `{data}` |
| epochs | {epochs} |
| wall time | {hours:.2f} h on {device} |
{metric_rows}
| weights | `{weights}` ({dtype}), sha256 `{sha256}` |

Trained with:

```
{command}
```

{measurement}"""

#: Row labels of the measured metrics in a card (``remeasure`` replaces these rows).
METRIC_ROW_LABELS = ("| test accuracy |", "| V1 (")
MEASURED_WITH = "Measured with:"


def _metric_rows(metrics: dict[str, Any], data: str, v1_layer: str) -> str:
    """The card's table rows of ``evaluate``'s metrics."""
    return (f"| test accuracy | **{metrics['test_accuracy']:.2f} %** ({data} test split) |\n"
            f"| V1 ({v1_layer}) orientation smoothness | **{metrics['v1_orientation_smoothness']:.3f} ± "
            f"{metrics['v1_orientation_smoothness_sem']:.3f}** (shuffled-distance chance "
            f"{metrics['v1_orientation_smoothness_chance']:.3f} ± {metrics['v1_orientation_smoothness_chance_sem']:.3f}"
            f", {metrics['v1_units_used']} most tuned units; mean ± SEM) |")


def _measurement(command: str, size: int, has_sheet: bool) -> str:
    """The card's closing section: how the metrics were measured."""
    positions = ("Positions are the model's own swap-optimized cortical sheet." if has_sheet
                 else "The model has no sheet; positions are the initial retinotopic sheet its topographic twin of the "
                      "same block sizes gets (`tdsnn.sheets.model_sheet`).")
    return f"""{MEASURED_WITH}

```
{command}
```

Smoothness follows TDANN: preferred orientation (argmax of the tuning curve over the 640
sine gratings at {size} px), units above the 75th percentile of tuning peak-to-peak,
|Δ preference| against cortical distance up to {V1_MAX_DIST_MM:.1f} mm, (max − first bin) / max.
± is one standard error: for the smoothness, a bootstrap over the analysed units ({N_BOOT}
samples drawn with replacement); for chance, the SEM over its shuffled-distance samples.
{positions}
"""


def _staged(final: Path, stack: ExitStack) -> Path:
    """A new temporary file beside ``final``, deleted when ``stack`` closes unless moved into place."""
    with tempfile.NamedTemporaryFile(dir=final.parent, prefix=f".{final.name}.", suffix=".staged", delete=False) as f:
        staged = Path(f.name)
    stack.callback(staged.unlink, missing_ok=True)
    return staged


def _inside(folder: Path, filename: str) -> Path:
    """``folder / filename``, required to stay inside ``folder``."""
    path = (folder / filename).resolve()
    if path.parent != folder.resolve():
        raise ValueError(f"{filename!r} leads outside {folder}")
    return path


def register(run: Path, tag: str, default: bool, half: bool, device: str = "cpu") -> dict[str, Any]:
    """Register ``run``'s final weights as ``<arch>.<tag>`` (see the module docstring); returns the entry."""
    check_part(tag, "tag")
    final = run / "train" / "final.safetensors"
    if not final.exists():
        raise CheckpointError(f"{final} not found: the run has not finished its train stage")
    registry._read_registry.cache_clear()
    registry_path = registry.REGISTRY_PATH
    registry.load_registry(registry_path)  # a broken registry fails before any work
    config, state = read_checkpoint(final)
    name = check_model_name(f"{config.arch}.{tag}")
    architecture = registry.architecture(config.arch)
    v1_layer = architecture.region_layer_map["V1"]
    weights_dir = registry_path.parent / "weights"
    weights_path, card_path = _inside(weights_dir, f"{name}.safetensors"), _inside(weights_dir, f"{name}.md")
    model = build(config)
    load_state(model, state, str(final))
    summary = run_summary(run)
    data = summary["config"]["data"]
    weights_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        staged_weights, staged_card = _staged(weights_path, stack), _staged(card_path, stack)
        sha = save_model(model, staged_weights, half=half, clusters=False)  # clusters: training state only
        stored = build(config)  # score exactly what is stored (float16 weights when --half)
        load_state(stored, read_checkpoint(staged_weights, sha)[1], str(staged_weights))
        started = time.monotonic()
        metrics = evaluate(stored, data, v1_layer, device)
        print(f"{summary_line(name, v1_layer, metrics)} [{time.monotonic() - started:.0f} s]")
        defaults = architecture.config.to_dict()
        overrides = {k: v for k, v in config.to_dict().items() if k != "arch" and v != defaults[k]}
        relative = f"weights/{weights_path.name}"
        measured_with = f"python -m tdsnn.register {run} --tag {tag}" + (" --default" if default else "") \
            + (" --half" if half else "")
        staged_card.write_text(CARD.format(
            name=name, arch=config.arch, description=f"`{config.arch}` trained on `{data}` with `tdsnn-train`.",
            kind=f"spiking, T = {config.timesteps}" if config.timesteps else "ANN", options=json.dumps(overrides),
            data=data, epochs=", ".join(f"{n} ({s})" for s, n in summary["epochs"].items()),
            hours=summary["train_seconds"] / 3600, device=device, metric_rows=_metric_rows(metrics, data, v1_layer),
            weights=relative, dtype="float16" if half else "float32", sha256=sha,
            command=summary["command"] or "(not recorded)",
            measurement=_measurement(measured_with, config.input_size, hasattr(stored, "sheets"))))
        entry = {"config": overrides, "data": data, "weights": {"path": relative, "sha256": sha}, "metrics": metrics}
        if default:
            entry["default"] = True
        text = registry_text(registry_path, name, entry, default)
        os.chmod(staged_card, os.stat(staged_weights).st_mode)  # a temporary file's 0600 -> the usual mode
        os.replace(staged_weights, weights_path)
        os.replace(staged_card, card_path)
        atomic_write(registry_path, lambda tmp: Path(tmp).write_text(text))
    registry._read_registry.cache_clear()
    return entry


def _local_variant(name: str) -> tuple[ModelEntry, Path, str]:
    """A registered variant with local weights and a data tag, its card's path and text."""
    entry = registry.resolve(check_model_name(name))
    if entry.weights is None or entry.weights.path is None or entry.data is None:
        raise ValueError(f"{name} has no local weights and data tag to measure (only `tdsnn.register`ed variants do)")
    card_path = _inside(registry.REGISTRY_PATH.parent / "weights", f"{name}.md")
    card = card_path.read_text() if card_path.exists() else ""
    if MEASURED_WITH not in card or not all(label in card for label in METRIC_ROW_LABELS):
        raise ValueError(f"{card_path} is missing or not a tdsnn model card (no metric rows or {MEASURED_WITH!r})")
    return entry, card_path, card


def _measured_card(card: str, entry: ModelEntry, model, metrics: dict[str, Any], command: str) -> str:
    """``card`` with its metric rows replaced by ``metrics`` and its measurement section by
    ``command``'s; its other rows (options, epochs, wall time, training command) are kept."""
    v1_layer = entry.region_layer_map["V1"]
    lines = card[:card.index(MEASURED_WITH)].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(METRIC_ROW_LABELS))
    kept = [line for line in lines if not line.startswith(METRIC_ROW_LABELS)]
    kept.insert(first, _metric_rows(metrics, entry.data, v1_layer))
    return "\n".join(kept) + "\n" + _measurement(command, entry.config.input_size, hasattr(model, "sheets"))


def _measure(entry: ModelEntry, device: str):
    """The variant's registered (sha256-checked) model and its ``evaluate`` metrics, printed."""
    model = registry.create_model(entry.name, pretrained=True)
    v1_layer = entry.region_layer_map["V1"]
    metrics = evaluate(model, entry.data, v1_layer, device)
    print(summary_line(entry.name, v1_layer, metrics))
    return model, metrics


def remeasure(name: str, device: str = "cpu") -> dict[str, Any]:
    """Measure the registered variant ``name`` again with the current analyses (``evaluate``
    on its registered, sha256-checked weights) and replace its metrics in the registry and
    in its card's metric rows and measurement section; returns the new metrics. For
    variants registered before an analysis changed. Card and registry are each replaced
    atomically, only after the measurement succeeded."""
    registry._read_registry.cache_clear()
    registry_path = registry.REGISTRY_PATH
    entry, card_path, card = _local_variant(name)
    model, metrics = _measure(entry, device)
    new_card = _measured_card(card, entry, model, metrics, f"python -m tdsnn.register --remeasure {name}")
    variant = yaml.safe_load(registry_path.read_text())["variants"][name]
    variant["metrics"] = metrics
    text = registry_text(registry_path, name, variant, bool(variant.get("default")))
    atomic_write(card_path, lambda tmp: Path(tmp).write_text(new_card))
    atomic_write(registry_path, lambda tmp: Path(tmp).write_text(text))
    registry._read_registry.cache_clear()
    return metrics


def register_from(source: str, tag: str, default: bool, device: str = "cpu") -> dict[str, Any]:
    """Register the registered variant ``source``'s weights once more as ``<arch>.<tag>``; returns the entry.

    The new entry names the same weights file and sha256 and takes ``source``'s config, data
    tag and sweep; it is measured afresh (``evaluate`` on the sha256-checked weights), and its
    card is ``source``'s with the new name, metrics and measurement, so the training rows and
    command stay those of the run that made the weights. A local weights file of a previous
    ``<arch>.<tag>`` entry that no other entry names any more is removed. Card and registry
    are each replaced atomically, only after the measurement succeeded."""
    check_part(tag, "tag")
    registry._read_registry.cache_clear()
    registry_path = registry.REGISTRY_PATH
    entry, _, card = _local_variant(source)
    name = check_model_name(f"{entry.arch}.{tag}")
    if name == entry.name:
        raise ValueError(f"--from {source} --tag {tag} names the variant itself; use --remeasure {source}")
    model, metrics = _measure(entry, device)
    flags = " --default" if default else ""
    card = f"# {name}\n\nThe weights of `{source}`, registered again as `{name}`.\n" + card.split("\n", 1)[1]
    new_card = _measured_card(card, entry, model, metrics, f"python -m tdsnn.register --from {source} --tag {tag}{flags}")
    previous = registry.resolve(name) if name in registry.list_models() else None
    variant = {k: v for k, v in yaml.safe_load(registry_path.read_text())["variants"][source].items() if k != "default"}
    variant["metrics"] = metrics
    if default:
        variant["default"] = True
    text = registry_text(registry_path, name, variant, default)
    card_path = _inside(registry_path.parent / "weights", f"{name}.md")
    atomic_write(card_path, lambda tmp: Path(tmp).write_text(new_card))
    atomic_write(registry_path, lambda tmp: Path(tmp).write_text(text))
    registry._read_registry.cache_clear()
    still_named = {e.weights.path for e in registry.load_registry(registry_path).entries.values() if e.weights}
    old = previous.weights.path if previous is not None and previous.weights else None
    if old is not None and old not in still_named:
        orphan = registry.weights_file(previous).resolve()
        if orphan.is_relative_to(registry_path.parent.resolve()):  # the parser refuses others; a symlink could lead out
            orphan.unlink(missing_ok=True)
    return variant


def registry_text(path: Path, name: str, entry: dict[str, Any], default: bool) -> str:
    """The registry file ``path`` with ``variants[name] = entry`` (and, with ``default``, the
    other defaults of its architecture cleared), comments kept (ruamel round-trip); checked
    by ``registry.load_registry``'s parser before it is returned."""
    yaml_rt = YAML()
    yaml_rt.width = 4096  # keep each flow mapping on its line
    data = yaml_rt.load(path.read_text())
    variants = data.get("variants") or {}
    arch = name.split(".")[0]
    if default:
        for other, spec in variants.items():
            if other.split(".")[0] == arch and other != name:
                spec.pop("default", None)
    variants[name] = json.loads(json.dumps(entry))
    data["variants"] = variants
    out = io.StringIO()
    yaml_rt.dump(data, out)
    registry.parse_registry(out.getvalue(), path)
    return out.getvalue()


def _tag(value: str) -> str:
    try:
        return check_part(value, "tag")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tdsnn.register", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, nargs="?", help="a tdsnn-train output folder")
    parser.add_argument("--tag", type=_tag, help="variant tag, e.g. fmnist (lower-case letters, digits, '_' or '-')")
    parser.add_argument("--remeasure", metavar="NAME", help="instead of registering a run, measure the registered "
                                                           "variant NAME again and update its metrics and card")
    parser.add_argument("--from", dest="source", metavar="NAME",
                        help="instead of registering a run, register the registered variant NAME's weights file "
                             "once more as <arch>.TAG, measured afresh (e.g. a sweep point as the demo variant)")
    parser.add_argument("--default", action="store_true", help="make it what the bare architecture name resolves to")
    parser.add_argument("--half", action="store_true", help="store float16 weights")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.remeasure is not None and (args.run is not None or args.source or args.tag or args.default or args.half):
        parser.error("--remeasure NAME takes no run folder, --from, --tag, --default or --half")
    if args.source is not None and (args.run is not None or args.tag is None or args.half):
        parser.error("--from NAME takes --tag (and optionally --default), no run folder or --half")
    if args.remeasure is None and args.source is None and (args.run is None or args.tag is None):
        parser.error("give a run folder and --tag (or --remeasure NAME, or --from NAME --tag TAG)")
    try:
        if args.remeasure is not None:
            remeasure(args.remeasure, args.device)
        elif args.source is not None:
            register_from(args.source, args.tag, args.default, args.device)
        else:
            register(args.run, args.tag, args.default, args.half, args.device)
    except registry.UnknownModelError as err:
        print(f"tdsnn.register: {err.args[0]}", file=sys.stderr)
        return 2
    except (CheckpointError, DataError, OSError, ValueError) as err:
        print(f"tdsnn.register: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
