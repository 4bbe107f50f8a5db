"""Frozen configuration dataclasses.

Every option that changes a model's computation lives here, so that a checkpoint's
JSON metadata can rebuild the model exactly (``ModelConfig.to_dict`` /
``ModelConfig.from_dict``).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Optional

#: The 8 residual-block outputs of ResNet-18, in forward order.
BLOCKS: tuple[str, ...] = (
    "layer1.0", "layer1.1", "layer2.0", "layer2.1",
    "layer3.0", "layer3.1", "layer4.0", "layer4.1",
)


class _Typed:
    """Frozen config dataclasses whose fields must hold values of their annotated types
    (an int is accepted where a float is annotated, a bool never counts as a number)."""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not _matches(value, hints[f.name]):
                raise ValueError(f"{type(self).__name__}.{f.name} must be {_describe(hints[f.name])}, got {value!r}")


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        return any(_matches(value, arg) for arg in args)
    if origin is tuple:
        return isinstance(value, tuple) and all(_matches(v, args[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union:
        return " or ".join(_describe(arg) for arg in args)
    if typing.get_origin(hint) is tuple:
        return f"a list of {_describe(args[0])}"
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


@dataclass(frozen=True)
class NeuronConfig(_Typed):
    """LIF neuron parameters (docs/method.md §1).

    tau: membrane time constant in timesteps; v_threshold / v_reset: dimensionless
    membrane units; surrogate_alpha: ATan surrogate sharpness.
    """
    tau: float = 2.0
    v_threshold: float = 1.0
    v_reset: float = 0.0
    decay_input: bool = True
    detach_reset: bool = True
    surrogate_alpha: float = 2.0


@dataclass(frozen=True)
class SheetConfig(_Typed):
    """Cortical-sheet construction (docs/method.md §2, after TDANN).

    jitter_mm: std of the Gaussian position jitter; n_clusters: square windows
    precomputed per sheet; keep_fraction: windows at or above this size quantile are
    kept; min_units / max_units: bounds on the common cluster size; seed: RNG seed of
    placement and cluster sampling.
    """
    jitter_mm: float = 0.3
    n_clusters: int = 20_000
    keep_fraction: float = 0.95
    min_units: int = 25
    max_units: int = 500
    seed: int = 0


@dataclass(frozen=True)
class STCConfig(_Typed):
    """Spatio-Temporal Constraints loss (docs/method.md §3).

    alpha / beta: weights of the rate (long-timescale) and synchrony (short-timescale)
    terms; clusters_per_layer: M; window: CCG lag window W in timesteps, ``None`` means
    max(1, T // 2 - 1); layers: constrained block names.
    """
    alpha: float = 50.0
    beta: float = 50.0
    clusters_per_layer: int = 10
    window: Optional[int] = None
    layers: tuple[str, ...] = BLOCKS

    def resolved_window(self, timesteps: int) -> int:
        return self.window if self.window is not None else max(1, timesteps // 2 - 1)


@dataclass(frozen=True)
class TopoLossConfig(_Typed):
    """TopoLoss on conv1/conv2 of every BasicBlock (TopoNets; docs/method.md §1)."""
    tau: float = 10.0
    factor: float = 3.0


@dataclass(frozen=True)
class ModelConfig(_Typed):
    """Everything needed to rebuild a model.

    arch: registered architecture name; timesteps: T (``None`` for ANNs); width:
    channel multiplier of 64-128-256-512; stem: ``"imagenet"`` (7x7/2 conv + maxpool)
    or ``"small"`` (3x3/1 conv, no maxpool); input_size: square input side in pixels;
    blurpool: apply a fixed 3x3 binomial blur (stride 1) before every strided conv with
    >= 16 input channels, the layout of TopoNets' published ResNet-18 weights.
    """
    arch: str
    timesteps: Optional[int] = None
    width: float = 1.0
    stem: str = "imagenet"
    num_classes: int = 1000
    in_channels: int = 3
    input_size: int = 224
    blurpool: bool = False
    neuron: Optional[NeuronConfig] = None
    sheet: Optional[SheetConfig] = None
    stc: Optional[STCConfig] = None
    topoloss: Optional[TopoLossConfig] = None

    def __post_init__(self):
        super().__post_init__()
        if self.stem not in ("imagenet", "small"):
            raise ValueError(f"stem must be 'imagenet' or 'small', got {self.stem!r}")
        if self.width <= 0:
            raise ValueError(f"width must be > 0, got {self.width}")
        if self.timesteps is not None and self.timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {self.timesteps}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """Inverse of ``to_dict``; unknown keys raise ``ValueError``."""
        d = dict(d)
        for name, section in _SECTIONS.items():
            if d.get(name) is not None:
                d[name] = _from_dict(section, d[name])
        return _from_dict(cls, d)

    def differences(self, other: "ModelConfig") -> list[str]:
        """``field: self_value != other_value`` for every dotted (nested) field where the two differ."""
        mine, theirs = _flat(self.to_dict()), _flat(other.to_dict())
        return [f"{k}: {mine.get(k)!r} != {theirs.get(k)!r}" for k in sorted(set(mine) | set(theirs))
                if mine.get(k) != theirs.get(k)]

    def replace(self, **changes) -> "ModelConfig":
        """A copy with fields changed. A dict given for a section (``neuron``, ``sheet``,
        ``stc``, ``topoloss``) updates only the sub-fields it names."""
        for name, section in _SECTIONS.items():
            if isinstance(changes.get(name), dict):
                current = getattr(self, name)
                base = dataclasses.asdict(current) if current is not None else {}
                changes[name] = _from_dict(section, {**base, **changes[name]})
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown model options: {sorted(unknown)}")
        return dataclasses.replace(self, **changes)


_SECTIONS = {"neuron": NeuronConfig, "sheet": SheetConfig, "stc": STCConfig, "topoloss": TopoLossConfig}


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one dict of dotted keys."""
    out = {}
    for key, value in d.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def _from_dict(cls, d: dict[str, Any]):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} options: {sorted(unknown)}")
    return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})
