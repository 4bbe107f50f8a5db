"""Options of a training run: the ``TrainConfig`` dataclass, its typed parser and its CLI flags.

Options come from the dataclass defaults, then a YAML file (``--config``), then flags. One
parser reads both: a YAML value or a flag's text is converted to the option's type and
checked against its range (``OptionType``), so a bad value stops the run with a
``ConfigError`` naming the file or flag before anything is written. Numbers may be written
as text (``lr: 1e-3``, which YAML reads as a string, is the number 0.001); any other
mismatch (``epochs: "two"``, ``epochs: 2.5``, ``data: 5``) is refused.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

from ..config import ModelConfig
from ..data import DataSpec

#: Image side (px) of each training dataset when ``--input-size`` is not given.
DEFAULT_INPUT_SIZE = {"fmnist": 32, "cifar100": 32, "synthetic": 32, "imagenet": 224, "folder": 224}


class ConfigError(ValueError):
    """An option that is unknown, of the wrong type or out of range; or a run that is refused."""


@dataclass(frozen=True)
class OptionType:
    """The type and range of one option: ``kind`` (int, float, str, bool, dict), ``low``
    (inclusive minimum, or exclusive with ``open_low``), ``choices`` (a regular expression
    the text must match) and ``optional`` (``None`` allowed)."""
    kind: type
    low: Optional[float] = None
    open_low: bool = False
    choices: Optional[str] = None
    optional: bool = False

    def describe(self) -> str:
        words = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
                 dict: "a mapping"}[self.kind]
        if self.low is not None:
            words += f" {'>' if self.open_low else '>='} {self.low:g}"
        if self.choices:
            words += f" matching {self.choices}"
        return words + (" or null" if self.optional else "")

    def parse(self, value: Any, where: str) -> Any:
        """``value`` (a YAML value, or the text of a flag) as this type; ``ConfigError`` naming
        ``where`` (a file and key, or a flag) when it is not one, or is out of range."""
        if value is None and self.optional:
            return None
        parsed = self._convert(value)
        if parsed is None or not self._in_range(parsed):
            raise ConfigError(f"{where}: expected {self.describe()}, got {value!r}")
        return parsed

    def _convert(self, value: Any) -> Any:
        if isinstance(value, bool) or self.kind is bool:
            return value if isinstance(value, bool) and self.kind is bool else None
        if self.kind is int:
            if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
                return int(value)
            return value if isinstance(value, int) else None
        if self.kind is float:
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    return None
            return value if isinstance(value, (int, float)) else None  # YAML ints stay ints, as earlier runs hashed them
        return value if isinstance(value, self.kind) else None

    def _in_range(self, value: Any) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and not (value > self.low if self.open_low else value >= self.low):
            return False
        return self.choices is None or re.fullmatch(self.choices, value) is not None


def option(default: Any, kind: type, help_text: str, **range_: Any) -> Any:
    """A ``TrainConfig`` field: its default, type and range (``OptionType``) and help text."""
    optional = default is None and kind is not dict
    factory = {"default_factory": dict} if kind is dict else {"default": default}
    return field(**factory, metadata={"type": OptionType(kind, optional=optional, **range_), "help": help_text})


POSITIVE_INT = dict(low=1)
COUNT = dict(low=0)
POSITIVE = dict(low=0, open_low=True)


@dataclass
class TrainConfig:
    """Every option of a training run (ImageNet recipe defaults, docs/method.md §4).

    lr is AdamW's learning rate, cosine-decayed to 0 after ``warmup_epochs`` of linear
    warm-up; ``model_options`` are ModelConfig overrides (``{"timesteps": 4, "stc": {"alpha": 50}}``).
    """
    model: str = option("tsresnet18", str, "architecture or arch.tag to train")
    data: str = option("imagenet", str, "dataset spec name[:path] (fmnist, cifar100, imagenet:DIR, folder:DIR, "
                                        "synthetic[:N])")
    out: Optional[str] = option(None, str, "run folder (default runs/<arch>-<dataset>)")
    input_size: Optional[int] = option(None, int, "image side in px (default 224 for ImageNet and folders, "
                                                  "32 otherwise)", **POSITIVE_INT)
    model_options: dict[str, Any] = option(None, dict, "ModelConfig overrides")
    epochs: int = option(300, int, "epochs of the train stage", **POSITIVE_INT)
    aux_epochs: Optional[int] = option(None, int, "epochs of the auxiliary SNN (default: --epochs)", **POSITIVE_INT)
    aux_weights: Optional[str] = option(None, str, "a trained checkpoint of the spiking twin (sresnet18, scornet, "
                                                    "spikformer) to use as the auxiliary SNN")
    batch_size: int = option(128, int, "images per optimizer step and process", **POSITIVE_INT)
    lr: float = option(5e-4, float, "AdamW learning rate", **POSITIVE)
    weight_decay: float = option(0.01, float, "AdamW weight decay", **COUNT)
    warmup_epochs: float = option(1.0, float, "epochs of linear learning-rate warm-up", **COUNT)
    amp: bool = option(True, bool, "mixed precision on CUDA")
    channels_last: bool = option(False, bool, "channels-last memory layout")
    seed: int = option(0, int, "seed of data order, augmentation, initialisation and cluster draws", **COUNT)
    workers: int = option(4, int, "data-loader processes", **COUNT)
    swap_windows: int = option(2000, int, "position pre-optimization: windows per sheet", **POSITIVE_INT)
    swap_steps: int = option(500, int, "position pre-optimization: attempts per window", **POSITIVE_INT)
    max_steps: Optional[int] = option(None, int, "stop after this many optimizer steps (resumable)", **POSITIVE_INT)
    checkpoint_minutes: float = option(10.0, float, "also checkpoint this often within an epoch", **COUNT)
    device: str = option("auto", str, "auto, cpu, cuda or cuda:N", choices=r"auto|cpu|cuda(:\d+)?")
    resume_lr: Optional[float] = option(None, float, "with --resume: continue the stage that stopped on a "
                                                     "non-finite value with this lower learning rate", **POSITIVE)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            setattr(self, f.name, f.metadata["type"].parse(getattr(self, f.name), f.name))

    def resolved(self) -> "TrainConfig":
        """A copy with the defaults that depend on other options filled in; ``DataError`` or
        ``ConfigError`` for a data spec that cannot be trained on."""
        spec = DataSpec.parse(self.data)
        if spec.name not in DEFAULT_INPUT_SIZE:
            raise ConfigError(f"--data {self.data}: {spec.name} is an evaluation split and cannot be trained on; "
                              f"train with one of {', '.join(DEFAULT_INPUT_SIZE)} (e.g. imagenet:DIR holding "
                              "train/ and val/)")
        arch = self.model.split(".")[0]
        return dataclasses.replace(
            self,
            input_size=self.input_size or DEFAULT_INPUT_SIZE[spec.name],
            out=self.out or f"runs/{arch}-{spec.name}",
            aux_epochs=self.aux_epochs if self.aux_epochs is not None else self.epochs,
        )


#: Model-option flags: flag -> (path in model_options, type and range).
MODEL_FLAGS: dict[str, tuple[tuple[str, ...], OptionType]] = {
    "timesteps": (("timesteps",), OptionType(int, **POSITIVE_INT)),
    "width": (("width",), OptionType(float, **POSITIVE)),
    "stem": (("stem",), OptionType(str, choices="imagenet|small")),
    "alpha": (("stc", "alpha"), OptionType(float, **COUNT)),
    "beta": (("stc", "beta"), OptionType(float, **COUNT)),
    "clusters": (("stc", "clusters_per_layer"), OptionType(int, **POSITIVE_INT)),
    "window": (("stc", "window"), OptionType(int, **POSITIVE_INT)),
    "topo_tau": (("topoloss", "tau"), OptionType(float, **POSITIVE)),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser(description: Optional[str] = None) -> argparse.ArgumentParser:
    """The ``tdsnn-train`` flags: one per ``TrainConfig`` option and per ``MODEL_FLAGS`` entry.
    Flag values stay text; ``parse_args`` converts them with the options' types."""
    parser = argparse.ArgumentParser(prog="tdsnn-train", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file of TrainConfig options")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted stage from its last checkpoint")
    for f in dataclasses.fields(TrainConfig):
        kind: OptionType = f.metadata["type"]
        if kind.kind is dict:
            continue
        default = "" if f.default is None else f" (default {f.default})"
        help_text = f"{f.metadata['help']}{default}; {kind.describe()}"
        if kind.kind is bool:
            parser.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(_flag(f.name), default=None, help=help_text)
    for flag, (path, kind) in MODEL_FLAGS.items():
        parser.add_argument(_flag(flag), default=None, help=f"model option {'.'.join(path)}; {kind.describe()}")
    return parser


def _set_path(options: dict, path: tuple[str, ...], value: Any) -> None:
    target = options
    for key in path[:-1]:
        target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise ConfigError(f"model_options.{key}: expected a mapping, got {target!r}")
    target[path[-1]] = value


def _get_path(options: dict, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(options, dict) or key not in options:
            return None
        options = options[key]
    return options


def read_yaml(path: str) -> dict[str, Any]:
    """The options in a ``--config`` file, each typed and range-checked; ``ConfigError``
    naming the file (and key) for unreadable YAML, unknown keys or bad values."""
    try:
        with open(path) as fh:
            values = yaml.safe_load(fh)
    except OSError as err:
        raise ConfigError(f"--config {path}: cannot read it: {err.strerror or err}") from err
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        raise ConfigError(f"--config {path}: not valid YAML{line}: "
                          f"{getattr(err, 'problem', None) or err}") from err
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: expected a mapping of options, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - set(fields), key=str)
    if unknown:
        raise ConfigError(f"--config {path}: unknown options {unknown}; valid: {', '.join(fields)}")
    typed = {key: fields[key].metadata["type"].parse(value, f"{path}: {key}") for key, value in values.items()}
    options = typed.get("model_options") or {}
    for flag, (keys, kind) in MODEL_FLAGS.items():
        value = _get_path(options, keys)
        if value is not None:
            _set_path(options, keys, kind.parse(value, f"{path}: model_options.{'.'.join(keys)}"))
    return typed


def parse_args(argv=None, description: Optional[str] = None) -> tuple[TrainConfig, bool]:
    """TrainConfig from defaults < ``--config`` YAML < CLI flags, and the ``--resume`` flag.
    Raises ``ConfigError`` for any bad option (argparse exits 2 for unknown flags)."""
    args = vars(build_parser(description).parse_args(argv))
    config_file, resume = args.pop("config"), args.pop("resume")
    values = read_yaml(config_file) if config_file else {}
    options = dict(values.get("model_options") or {})
    for flag, (path, kind) in MODEL_FLAGS.items():
        value = args.pop(flag)
        if value is not None:
            _set_path(options, path, kind.parse(value, _flag(flag)))
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for name, value in args.items():
        if value is not None:
            values[name] = fields[name].metadata["type"].parse(value, _flag(name))
    values["model_options"] = options
    cfg = TrainConfig(**values)
    if cfg.resume_lr is not None and not resume:
        raise ConfigError("--resume-lr only applies with --resume (to a stage that stopped on a non-finite value)")
    return cfg, resume


#: Options that do not change what a run computes, and those that only the aux/swap stages read.
VOLATILE = ("out", "workers", "max_steps", "checkpoint_minutes", "device", "resume_lr")
PIPELINE_ONLY = ("aux_epochs", "aux_weights", "swap_windows", "swap_steps")


def fit_options(cfg: TrainConfig) -> dict[str, Any]:
    """The options that determine one stage's training (what checkpoints and stage markers record)."""
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in VOLATILE + PIPELINE_ONLY}


def as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples as lists, paths as strings)."""
    return json.loads(json.dumps(value, default=str))


def comparable(config: Optional[dict]) -> Optional[dict]:
    """A run config as JSON, its model config completed with the defaults of options that
    were added after it was written (so such runs still resume)."""
    if config is None:
        return None
    config = as_json(config)
    if "model_config" in config:
        config["model_config"] = as_json(ModelConfig.from_dict(config["model_config"]).to_dict())
    return config


def config_hash(payload: Any) -> str:
    """A short sha256 of a JSON-able payload (a stage's options), independent of key order."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def dump_yaml(cfg: TrainConfig) -> str:
    """``cfg`` as the YAML a ``--config`` file reads back."""
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
