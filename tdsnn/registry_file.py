"""The registry file format: ``model_registry.yaml`` parsed into typed, checked entries.

Parsing (``parse_registry`` / ``load_registry``) builds every resolvable name's
``ModelEntry`` at once, so a bad file fails when first used, not when one model is asked
for: an unknown key, a name outside the strict pattern (``tdsnn.names``), an option of the
wrong type, a duplicate key, a weights path outside the registry's folder, local weights
without a sha256 or two ``default: true`` variants of one architecture raise
``RegistryError`` naming the file and line (from yaml's node marks).
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from .checkpoint import PathLike
from .config import ModelConfig
from .data import DATASET_STATS, Preprocessing
from .hub import HubFile
from .models import ARCHITECTURES
from .names import InvalidName, check_model_name, check_part
from .regions import REGIONS

#: Keys of a ``temporal`` section: ms of timestep 0's start and of one timestep.
TEMPORAL_KEYS = ("t0_ms", "step_ms")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class RegistryError(ValueError):
    """A registry file that does not parse or holds an invalid entry (the message names file and line)."""


@dataclass(frozen=True)
class Weights:
    """Where a variant's weights live, and their sha256 (``None``: not yet pinned).

    Exactly one source: ``path`` (a tdsnn safetensors checkpoint, relative to the registry
    file), ``hub`` (a ``torch.save``d state_dict on the Hugging Face hub) or
    ``torchvision`` (a torchvision weights enum such as ``ResNet18_Weights.IMAGENET1K_V1``).
    """
    path: Optional[str] = None
    hub: Optional[HubFile] = None
    torchvision: Optional[str] = None
    sha256: Optional[str] = None

    def __post_init__(self):
        given = [k for k in ("path", "hub", "torchvision") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"weights need exactly one of path, hub, torchvision; got {given or 'none'}")
        if self.sha256 is not None and not (isinstance(self.sha256, str) and _SHA256.fullmatch(self.sha256)):
            raise ValueError(f"sha256 must be 64 lower-case hex digits, got {self.sha256!r}")

    @property
    def source(self) -> str:
        return self.path or (str(self.hub) if self.hub else f"torchvision {self.torchvision}")


@dataclass(frozen=True)
class ModelEntry:
    """One resolved registry entry."""
    name: str
    arch: str
    config: ModelConfig
    region_layer_map: dict[str, str]
    preprocessing: Preprocessing
    temporal: dict[str, float]
    weights: Optional[Weights] = None
    data: Optional[str] = None
    sweep: Optional[str] = None


@dataclass(frozen=True)
class ArchitectureSpec:
    """``architectures.<arch>``: the architecture's default options, region map and
    Brain-Score time bins (``temporal``, over the top-level ones)."""
    config: dict = field(default_factory=dict)
    region_layer_map: dict = field(default_factory=dict)
    temporal: dict = field(default_factory=dict)


@dataclass(frozen=True)
class VariantSpec:
    """``variants.<arch>.<tag>``: overrides of the architecture's options and maps, the
    weights, the training data tag, the metrics ``tdsnn.register`` measured, whether the
    bare ``arch`` resolves to it, and the trade-off sweep (``tdsnn-sweep``) it is a point of."""
    config: dict = field(default_factory=dict)
    region_layer_map: dict = field(default_factory=dict)
    temporal: dict = field(default_factory=dict)
    weights: Optional[dict] = None
    data: Optional[str] = None
    metrics: dict = field(default_factory=dict)
    default: bool = False
    sweep: Optional[str] = None


@dataclass(frozen=True)
class RegistryFile:
    """The top level of a registry file: shared maps, architectures and variants."""
    region_layer_map: dict = field(default_factory=dict)
    temporal: dict = field(default_factory=dict)
    architectures: dict = field(default_factory=dict)
    variants: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Registry:
    """A parsed registry: each architecture's own entry, every resolvable name's entry (a
    bare ``arch`` gives its default variant's), and the line that defines each name."""
    path: Path
    architectures: dict[str, ModelEntry]
    entries: dict[str, ModelEntry]
    lines: dict[str, int]


class _Mapping(dict):
    """A YAML mapping that remembers the line (1-based) of itself and of each key; built
    from ``items`` with the lines of ``like``."""

    def __init__(self, items: Optional[dict] = None, like: Optional[_Mapping] = None, line: int = 1):
        super().__init__(items or {})
        self.line = getattr(like, "line", line)
        self.key_lines = dict(getattr(like, "key_lines", {}))


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` building ``_Mapping``s and rejecting duplicate keys."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Mapping:
    loader.flatten_mapping(node)
    mapping = _Mapping(line=node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise RegistryError(f"{loader.name}:{key_node.start_mark.line + 1}: duplicate key {key!r} "
                                f"(first on line {mapping.key_lines[key]})")
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _Parser:
    """Typed parsing of one registry file, with errors naming its lines."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, line: int, message: str) -> RegistryError:
        return RegistryError(f"{self.path}:{line}: {message}")

    def section(self, value: Any, cls: type, where: str, line: int):
        """``value`` (a mapping, or empty) as dataclass ``cls``; unknown keys are errors."""
        if value is None:
            value = _Mapping(line=line)
        if not isinstance(value, _Mapping):
            raise self.error(line, f"{where} must be a mapping, got {value!r}")
        known = [f.name for f in dataclasses.fields(cls)]
        for key in value:
            if key not in known:
                raise self.error(value.key_lines[key], f"unknown key {key!r} in {where}; known keys: {', '.join(known)}")
        return cls(**{k: (v if v is not None else _empty(cls, k)) for k, v in value.items()})

    def mapping(self, value: Any, where: str, line: int) -> dict:
        if not isinstance(value, dict):
            raise self.error(line, f"{where} must be a mapping, got {value!r}")
        return value

    def line_of(self, mapping: dict, key: str, default: int) -> int:
        return getattr(mapping, "key_lines", {}).get(key, default)

    def region_map(self, value: dict, where: str, line: int) -> dict[str, str]:
        value = self.mapping(value, where, line)
        for region, layer in value.items():
            if region not in REGIONS or not isinstance(layer, str):
                raise self.error(self.line_of(value, region, line),
                                 f"{where}: {region!r}: {layer!r} is not a region -> layer entry "
                                 f"(regions: {', '.join(REGIONS)})")
        return dict(value)

    def temporal(self, value: dict, where: str, line: int) -> dict[str, float]:
        value = self.mapping(value, where, line)
        for key, number in value.items():
            if key not in TEMPORAL_KEYS or isinstance(number, bool) or not isinstance(number, (int, float)):
                raise self.error(self.line_of(value, key, line), f"{where}: {key!r}: {number!r} is not one of "
                                                                 f"{', '.join(TEMPORAL_KEYS)} with a number (ms)")
        return dict(value)

    def config(self, base: ModelConfig, overrides: dict, where: str, line: int) -> ModelConfig:
        try:
            return base.replace(**self.mapping(overrides, where, line))
        except (TypeError, ValueError) as err:
            raise self.error(line, f"{where}: {err}") from err

    def weights(self, value: Any, where: str, line: int) -> Weights:
        line = getattr(value, "line", line)
        fields = dict(self.mapping(value, where, line))
        try:
            if fields.get("hub") is not None:
                fields["hub"] = self.section(fields["hub"], HubFile, f"{where}.hub", line)
            weights = self.section(_Mapping(fields, value), Weights, where, line)
        except RegistryError:
            raise
        except (TypeError, ValueError) as err:
            raise self.error(line, f"{where}: {err}") from err
        if weights.path is not None and weights.sha256 is None:
            raise self.error(line, f"{where}: local weights need their sha256 (`sha256sum {weights.path}`)")
        if weights.path is not None and not _stays_inside(weights.path):
            raise self.error(line, f"{where}.path {weights.path!r} is not a relative path inside the registry's "
                                   f"folder {self.path.parent} (absolute paths and '..' are refused)")
        return weights

    def parse(self, text: str) -> Registry:
        loader = _Loader(text)
        loader.name = str(self.path)
        try:
            raw = loader.get_single_data()
        except yaml.YAMLError as err:
            raise RegistryError(f"{self.path}: not valid YAML: {err}") from err
        finally:
            loader.dispose()
        top = self.section(raw, RegistryFile, "the registry", 1)
        shared_map = self.region_map(top.region_layer_map, "region_layer_map", 1)
        shared_temporal = self.temporal(top.temporal, "temporal", 1)
        archs = self.mapping(top.architectures, "architectures", 1)
        variants = self.mapping(top.variants, "variants", 1)
        entries, lines = {}, {}
        for arch, raw_spec in archs.items():
            line = self.line_of(archs, arch, 1)
            try:
                check_part(arch, "architecture name")
            except InvalidName as err:
                raise self.error(line, str(err)) from None
            if arch not in ARCHITECTURES:
                raise self.error(line, f"architecture {arch!r} has no implementation; implemented: "
                                       f"{', '.join(sorted(ARCHITECTURES))}")
            spec = self.section(raw_spec, ArchitectureSpec, f"architectures.{arch}", line)
            config = self.config(ModelConfig(arch=arch), spec.config, f"architectures.{arch}.config",
                                 self.line_of(raw_spec, "config", line))
            region_map = {**shared_map, **self.region_map(spec.region_layer_map,
                                                          f"architectures.{arch}.region_layer_map", line)}
            temporal = {**shared_temporal, **self.temporal(spec.temporal, f"architectures.{arch}.temporal",
                                                           self.line_of(raw_spec, "temporal", line))}
            entries[arch] = _entry(arch, arch, config, region_map, temporal, None, None)
            lines[arch] = line
        defaults: dict[str, str] = {}
        for name, raw_spec in variants.items():
            line = self.line_of(variants, name, 1)
            try:
                check_model_name(name)
            except InvalidName as err:
                raise self.error(line, str(err)) from None
            arch, dot, _ = name.partition(".")
            if not dot:
                raise self.error(line, f"variant {name!r} needs a tag: write it as {name}.<tag>")
            if arch not in entries:
                raise self.error(line, f"variant {name!r}: architecture {arch!r} is not under architectures")
            where = f"variants.{name}"
            spec = self.section(raw_spec, VariantSpec, where, line)
            if not isinstance(spec.default, bool):
                raise self.error(self.line_of(raw_spec, "default", line),
                                 f"{where}.default must be true or false, got {spec.default!r}")
            if spec.default:
                if arch in defaults:
                    raise self.error(self.line_of(raw_spec, "default", line),
                                     f"{name} and {defaults[arch]} (line {lines[defaults[arch]]}) are both "
                                     f"`default: true` for {arch}; keep one")
                defaults[arch] = name
            if spec.data is not None and (not isinstance(spec.data, str)
                                          or spec.data.partition(":")[0] not in DATASET_STATS):
                raise self.error(self.line_of(raw_spec, "data", line),
                                 f"{where}.data {spec.data!r} is not a data tag "
                                 f"({', '.join(DATASET_STATS)}, written name[:path])")
            if spec.sweep is not None:
                try:
                    check_part(spec.sweep, "sweep name")
                except InvalidName as err:
                    raise self.error(self.line_of(raw_spec, "sweep", line), f"{where}.sweep: {err}") from None
            base = entries[arch]
            config = self.config(base.config, spec.config, f"{where}.config", self.line_of(raw_spec, "config", line))
            region_map = {**base.region_layer_map, **self.region_map(spec.region_layer_map,
                                                                     f"{where}.region_layer_map", line)}
            temporal = {**base.temporal, **self.temporal(spec.temporal, f"{where}.temporal", line)}
            weights = self.weights(spec.weights, f"{where}.weights", line) if spec.weights is not None else None
            entries[name] = _entry(name, arch, config, region_map, temporal, weights, spec.data, spec.sweep)
            lines[name] = line
        for name, entry in entries.items():
            missing = [r for r in REGIONS if r not in entry.region_layer_map]
            absent = [k for k in TEMPORAL_KEYS if k not in entry.temporal]
            if missing or absent:
                raise self.error(lines[name], f"{name} has no layer for {missing} or no temporal {absent}")
        architectures = {arch: entries[arch] for arch in archs}
        entries.update({arch: entries[variant] for arch, variant in defaults.items()})
        return Registry(path=self.path, architectures=architectures, entries=entries, lines=lines)


def _stays_inside(relative: str) -> bool:
    """Whether ``relative`` names a file below its base folder (no absolute path, no ``..``
    escape); symbolic links placed in the folder by its owner are followed as they are."""
    normal = os.path.normpath(relative)
    return not os.path.isabs(relative) and normal != os.curdir and Path(normal).parts[0] != os.pardir


def _empty(cls: type, key: str):
    """The default of dataclass ``cls``'s field ``key`` (a YAML ``key:`` with no value)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == key)
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _entry(name: str, arch: str, config: ModelConfig, region_map: dict, temporal: dict,
           weights: Optional[Weights], data: Optional[str], sweep: Optional[str] = None) -> ModelEntry:
    preprocessing = Preprocessing(config.input_size, *DATASET_STATS[data.partition(":")[0]]) if data \
        else Preprocessing(config.input_size)
    return ModelEntry(name=name, arch=arch, config=config, region_layer_map=region_map,
                      preprocessing=preprocessing, temporal=temporal, weights=weights, data=data, sweep=sweep)


def parse_registry(text: str, path: PathLike) -> Registry:
    """Parse and check registry ``text`` as the file ``path`` (weights paths are relative to
    its folder; ``RegistryError`` naming the line on any problem)."""
    return _Parser(Path(path)).parse(text)


def load_registry(path: PathLike) -> Registry:
    """``parse_registry`` of the file ``path``."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise RegistryError(f"cannot read the model registry {path}: {err}") from err
    return parse_registry(text, path)
