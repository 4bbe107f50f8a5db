"""The trade-off sweep file read by ``tdsnn-sweep``: the training options every point
shares, and per architecture its loss strengths and seeds.

    name: fmnist                      # the sweep: its points register as <arch>.<name>-<point>
    description: ...                  # stated above the results (recipe, cost setting)
    train: {data: fmnist, epochs: 12, model_options: {width: 0.5}}  # tdsnn-train options
    families:
      sresnet18: {seeds: [0, 1]}      # non-topographic: seeds only
      tsresnet18:
        strengths: [{alpha: 0, beta: 0}, {alpha: 1, beta: 1, seeds: [0, 1]}]  # seeds: this strength's own
        seeds: [0]                    # default [0]
        aux: sresnet18                # its auxiliary SNN: that family's point of the same seed
        model_options: {sheet: {n_clusters: 2000}}  # on top of train.model_options
      toponet_resnet18:
        strengths: [{tau: 1}]
    matched_smoothness: 0.3           # optional; default: the most smoothness every curve reaches

A family is an architecture. Its strengths are the weights of its topographic loss:
``alpha`` and ``beta`` (STC, docs/method.md §3) for architectures with an ``stc`` section,
``tau`` (TopoLoss) for those with ``topoloss``; each in the range ``tdsnn-train`` accepts
(τ > 0: a TopoNet at τ = 0 is its ResNet18 baseline, which then starts its curve).
Architectures with neither are non-topographic baselines and take seeds only. A strength
may name its own ``seeds`` instead of the family's (a second seed where a cost is close to
the baseline's spread, say). ``train``
holds ``tdsnn-train --config`` options except ``model``, ``seed``, ``out``,
``aux_weights`` and ``max_steps``, which the sweep sets per point.

Points run non-topographic families first (their registered weights are the auxiliary
SNNs of the points that name them as ``aux``), then in file order: strengths, then seeds.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from tdsnn import registry
from tdsnn.config import ModelConfig
from tdsnn.data import DataError
from tdsnn.names import check_part
from tdsnn.training.config import MODEL_FLAGS, ConfigError, OptionType, TrainConfig
from tdsnn.training.pipeline import model_config

#: Model-config section of a topographic loss -> its strengths (name -> ``tdsnn-train`` model flag).
LOSS_STRENGTHS = {"stc": {"alpha": "alpha", "beta": "beta"}, "topoloss": {"tau": "topo_tau"}}
#: Strength name -> its abbreviation in variant tags (α = 0.5, β = 0 -> ``a0p5-b0``).
TAG_PREFIX = {"alpha": "a", "beta": "b", "tau": "tau"}
#: Strength name -> its symbol in tables and figures.
STRENGTH_SYMBOLS = {"alpha": "α", "beta": "β", "tau": "τ"}
#: Options the sweep sets per point; ``train`` may not hold them.
PER_POINT = ("model", "seed", "out", "aux_weights", "max_steps")
TOP_KEYS = ("name", "description", "train", "families", "matched_smoothness")
FAMILY_KEYS = ("strengths", "seeds", "aux", "model_options")
SEED = OptionType(int, low=0)
SMOOTHNESS = OptionType(float, low=0, optional=True)


class SweepError(ValueError):
    """A sweep file that cannot be read or holds an invalid entry (the message names the file)."""


@dataclass(frozen=True)
class Point:
    """One training run of a sweep: ``family`` (its architecture) at ``strengths`` (name ->
    value; empty for a non-topographic family) and ``seed``, registered as ``arch.tag``.
    ``cfg``: its resolved training options (``aux_weights`` filled in when it runs);
    ``aux``: the variant whose weights are its auxiliary SNN, or None."""
    family: str
    strengths: dict[str, float]
    seed: int
    tag: str
    cfg: TrainConfig
    aux: Optional[str] = None

    @property
    def name(self) -> str:
        return f"{self.family}.{self.tag}"



@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file: its name, description, the file, its points in run order, each
    family's strength names (empty for non-topographic ones) and the optional matched
    smoothness level."""
    name: str
    description: str
    path: Path
    points: tuple[Point, ...]
    families: dict[str, tuple[str, ...]]
    matched_smoothness: Optional[float] = None

    @property
    def data(self) -> str:
        return self.points[0].cfg.data


def strength_flags(config: ModelConfig) -> dict[str, str]:
    """The strengths of an architecture's topographic losses (name -> ``tdsnn-train`` model flag)."""
    return {name: flag for section, flags in LOSS_STRENGTHS.items() if getattr(config, section, None) is not None
            for name, flag in flags.items()}


def strength_text(strengths: dict[str, float]) -> str:
    """Strengths as text, e.g. ``α 0.5 β 0``, ``τ 1`` (``–`` for none)."""
    return " ".join(f"{STRENGTH_SYMBOLS[k]} {v:g}" for k, v in strengths.items()) or "–"


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    """Model options, later layers over earlier ones; a section (a mapping such as ``stc``)
    is merged key by key."""
    options: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            both = isinstance(value, dict) and isinstance(options.get(key), dict)
            options[key] = {**options[key], **value} if both else (dict(value) if isinstance(value, dict) else value)
    return options


def number_text(value: float) -> str:
    """A strength as a tag part: ``0.5`` -> ``0p5``, ``10`` -> ``10``."""
    return format(value, "g").replace(".", "p").replace("+", "")


def point_tag(sweep: str, strengths: dict[str, float], seed: int) -> str:
    """``<sweep>-<strengths>-s<seed>``, checked against the name pattern (``InvalidName``)."""
    parts = [sweep, *(f"{TAG_PREFIX[k]}{number_text(v)}" for k, v in strengths.items()), f"s{seed}"]
    return check_part("-".join(parts), "variant tag")


class _Reader:
    """Typed reading of one sweep file, with errors naming it."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, message: str) -> SweepError:
        return SweepError(f"{self.path}: {message}")

    def mapping(self, value: Any, where: str, known: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            raise self.error(f"{where} must be a mapping, got {value!r}")
        unknown = [k for k in value if k not in known]
        if unknown:
            raise self.error(f"unknown key(s) {unknown} in {where}; valid: {', '.join(known)}")
        return value

    def load(self) -> dict:
        try:
            raw = yaml.safe_load(self.path.read_text())
        except OSError as err:
            raise SweepError(f"cannot read the sweep file {self.path}: {err.strerror or err}") from err
        except yaml.YAMLError as err:
            raise self.error(f"not valid YAML: {err}") from err
        top = self.mapping(raw, "the sweep file", TOP_KEYS)
        for key in ("name", "train", "families"):
            if key not in top:
                raise self.error(f"missing {key!r}")
        return top

    def train(self, value: Any, overrides: dict[str, Any]) -> TrainConfig:
        fields = tuple(f.name for f in dataclasses.fields(TrainConfig))
        values = self.mapping(value, "train", tuple(f for f in fields if f not in PER_POINT))
        try:
            return TrainConfig(**{**values, **overrides}).resolved()
        except (ConfigError, DataError) as err:
            raise self.error(f"train: {err}") from err

    def seeds(self, value: Any, where: str) -> list[int]:
        if not isinstance(value, list) or not value:
            raise self.error(f"{where} must be a non-empty list of seeds, got {value!r}")
        seeds = [self.parse(SEED, seed, f"{where}[{i}]") for i, seed in enumerate(value)]
        if len(set(seeds)) != len(seeds):
            raise self.error(f"{where} repeats a seed: {seeds}")
        return seeds

    def strengths(self, value: Any, where: str, flags: dict[str, str],
                  seeds: list[int]) -> list[tuple[dict[str, float], list[int]]]:
        """Each strength of ``value`` with its seeds (its own ``seeds``, else the family's ``seeds``)."""
        if not isinstance(value, list) or not value:
            raise self.error(f"{where} must be a non-empty list of {{{', '.join(flags)}}} mappings, got {value!r}")
        grid: list[tuple[dict[str, float], list[int]]] = []
        for i, entry in enumerate(value):
            if not isinstance(entry, dict) or set(entry) - {"seeds"} != set(flags):
                raise self.error(f"{where}[{i}]: expected a mapping of exactly {', '.join(flags)} (and optionally "
                                 f"seeds), got {entry!r}")
            strengths = {k: self.parse(MODEL_FLAGS[flag][1], entry[k], f"{where}[{i}].{k}")
                         for k, flag in flags.items()}
            if any(strengths == other for other, _ in grid):
                raise self.error(f"{where}[{i}] repeats {strengths}")
            grid.append((strengths, self.seeds(entry["seeds"], f"{where}[{i}].seeds") if "seeds" in entry else seeds))
        return grid

    def parse(self, kind: OptionType, value: Any, where: str) -> Any:
        try:
            return kind.parse(value, where)
        except ConfigError as err:
            raise self.error(str(err)) from err


def _loss_options(strengths: dict[str, float], flags: dict[str, str]) -> dict[str, Any]:
    """``strengths`` as model options, e.g. ``{"stc": {"alpha": 1.0, "beta": 1.0}}``."""
    options: dict[str, Any] = {}
    for key, value in strengths.items():
        section, option = MODEL_FLAGS[flags[key]][0]
        options.setdefault(section, {})[option] = value
    return options


def load_sweep(path: Path, runs: Optional[Path] = None, overrides: Optional[dict[str, Any]] = None) -> Sweep:
    """The sweep in ``path``, each point's run folder in ``runs`` (default
    ``runs/sweeps/<name>``), ``overrides`` (e.g. ``device``, ``workers``) applied to every
    point's options. ``SweepError``/``InvalidName`` for anything invalid, before any work."""
    path = Path(path)
    reader = _Reader(path)
    top = reader.load()
    name = check_part(top["name"], "sweep name")
    description = top.get("description") or ""
    if not isinstance(description, str):
        raise reader.error(f"description must be text, got {description!r}")
    base = reader.train(top["train"], overrides or {})
    runs = Path(runs) if runs is not None else Path("runs") / "sweeps" / name
    families = top["families"]
    if not isinstance(families, dict) or not families:
        raise reader.error(f"families must be a non-empty mapping of architectures, got {families!r}")
    specs, flags, seeds = {}, {}, {}
    for arch, spec in families.items():
        check_part(arch, "family (architecture) name")
        try:
            config = registry.architecture_config(arch)
        except registry.UnknownModelError as err:
            raise reader.error(f"families: {err}") from None
        specs[arch] = reader.mapping(spec if spec is not None else {}, f"families.{arch}", FAMILY_KEYS)
        flags[arch] = strength_flags(config)
        seeds[arch] = reader.seeds(specs[arch].get("seeds", [0]), f"families.{arch}.seeds")
    points: list[Point] = []
    for arch in sorted(specs, key=lambda a: bool(flags[a])):  # non-topographic first, else file order
        spec, where = specs[arch], f"families.{arch}"
        if flags[arch]:
            grid = reader.strengths(spec.get("strengths"), f"{where}.strengths", flags[arch], seeds[arch])
        elif "strengths" in spec or "aux" in spec:
            raise reader.error(f"{where}: {arch} has no topographic loss; give it seeds only")
        else:
            grid = [({}, seeds[arch])]
        family_options = spec.get("model_options") or {}
        if not isinstance(family_options, dict):
            raise reader.error(f"{where}.model_options must be a mapping, got {family_options!r}")
        aux = spec.get("aux")
        used = sorted({seed for _, point_seeds in grid for seed in point_seeds})
        if aux is not None and (aux not in specs or flags[aux] or not set(used) <= set(seeds[aux])):
            raise reader.error(f"{where}.aux {aux!r} must be a non-topographic family of this sweep with every seed "
                               f"of {arch} ({used})")
        for strengths, point_seeds in grid:
            for seed in point_seeds:
                tag = point_tag(name, strengths, seed)
                options = merged(base.model_options, family_options, _loss_options(strengths, flags[arch]))
                try:
                    model_config(arch, {"input_size": base.input_size, **options})
                except ConfigError as err:
                    raise reader.error(f"{where}: {err}") from err
                cfg = dataclasses.replace(base, model=arch, seed=seed, out=str(runs / f"{arch}.{tag}"),
                                          model_options=options)
                aux_name = f"{aux}.{point_tag(name, {}, seed)}" if aux else None
                points.append(Point(arch, strengths, seed, tag, cfg, aux_name))
    matched = reader.parse(SMOOTHNESS, top.get("matched_smoothness"), "matched_smoothness")
    return Sweep(name, description.strip(), path, tuple(points), {a: tuple(flags[a]) for a in specs}, matched)
