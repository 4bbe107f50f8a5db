"""Cortical sheets: unit positions (mm) and clusters of nearby units (docs/method.md §2, after TDANN).

A sheet gives each unit (c, h, w) of a block output a 2-D position in mm; the flat unit
order is channel-major, ``c*H*W + h*W + w``. ``positions[:, 0]`` runs along w and
``positions[:, 1]`` along h. Clusters are random square windows of the area's cluster
width, trimmed to a common size Q and stored as an index array [P, Q].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import torch
from torch import Tensor

from .config import SheetConfig


@dataclass(frozen=True)
class Area:
    """A cortical area: sheet side and cluster (neighbourhood) width, both in mm."""
    name: str
    side_mm: float
    cluster_width_mm: float


AREAS: dict[str, Area] = {a.name: a for a in (
    Area("retina", 2.4, 0.0475),
    Area("V1", 36.75, 1.626),
    Area("V2", 35.0, 3.977),
    Area("V4", 22.4, 2.545),
    Area("IT", 70.0, 31.818),
)}

#: Area of each residual-block output (TDANN's ``BRAIN_MAPPING['resnet18']``).
BLOCK_AREAS: dict[str, str] = {
    "layer1.0": "retina", "layer1.1": "retina",
    "layer2.0": "V1", "layer2.1": "V1",
    "layer3.0": "V2", "layer3.1": "V4",
    "layer4.0": "IT", "layer4.1": "IT",
}

#: Overlap of neighbouring hypercolumns in the first block (TDANN's INITIAL_RF_OVERLAP).
FIRST_RF_OVERLAP = 0.1

# Elements per chunk of window-by-unit work in ``units_in_squares`` / ``sample_clusters``.
_CHUNK_ELEMENTS = 1 << 23
# A square of side w touches this many position bands of height w / (_BANDS - 1).
_BANDS = 5


def sheet_key(block: str) -> str:
    """ModuleDict key of a block's sheet: ``"layer2.0"`` -> ``"layer2_0"``."""
    return block.replace(".", "_")


def rf_centers(n: int, side_mm: float, overlap: float) -> tuple[Tensor, float]:
    """Centres [n] (float64, mm) of n hypercolumns tiling [0, side_mm] with fractional
    ``overlap``, and their width w = side / (n - n*overlap + overlap) in mm."""
    width = side_mm / (n - n * overlap + overlap)
    return torch.linspace(width / 2, side_mm - width / 2, n, dtype=torch.float64), width


def retinotopic_positions(dims: tuple[int, int, int], side_mm: float, first_height: int,
                          jitter_mm: float, generator: torch.Generator) -> Tensor:
    """TDANN's retinotopic placement of a C x H x W block output on a side_mm square sheet.

    The H x W grid becomes hypercolumn anchors (overlap o = min(0.1 * first_height / H, 1),
    RF width and centres from ``rf_centers`` per axis, so H != W tiles the square sheet with
    rectangles); each channel is placed uniformly within +-w/2 of its anchor; Gaussian jitter
    of std jitter_mm is added and each axis is rescaled back to its pre-jitter extent.
    Returns [C*H*W, 2] float32 mm, channel-major.
    """
    c, h, w = dims
    overlap = min(FIRST_RF_OVERLAP * first_height / h, 1.0)
    cx, wx = rf_centers(w, side_mm, overlap)
    cy, wy = rf_centers(h, side_mm, overlap)
    anchors = torch.stack(torch.broadcast_tensors(cx[None, :], cy[:, None]), dim=-1)  # [H, W, 2]
    half = torch.tensor([wx / 2, wy / 2], dtype=torch.float64)
    u = torch.rand((c, h, w, 2), generator=generator, dtype=torch.float64)
    pos = (anchors + (2 * u - 1) * half).reshape(-1, 2)
    return jitter_positions(pos, jitter_mm, generator).float()


def jitter_positions(pos: Tensor, jitter_mm: float, generator: torch.Generator) -> Tensor:
    """Add N(0, jitter_mm^2) noise to pos [N, 2] (mm), then map each axis affinely back onto
    its original [min, max] (TDANN's ``jitter_positions``)."""
    noisy = pos + jitter_mm * torch.randn(pos.shape, generator=generator, dtype=pos.dtype)
    lo, span = pos.amin(0), pos.amax(0) - pos.amin(0)
    nlo, nspan = noisy.amin(0), noisy.amax(0) - noisy.amin(0)
    scale = torch.where(nspan > 0, span / nspan, torch.ones_like(span))
    return (noisy - nlo) * scale + lo


def window_origins(positions: Tensor, width_mm: float, n: int, generator: torch.Generator) -> Tensor:
    """Lower-left corners [n, 2] of n random width_mm squares, uniform over the positions'
    bounding box shrunk by the width (TDANN; a width beyond the extent gives squares that
    overhang the sheet)."""
    lo, hi = positions.amin(0), positions.amax(0) - width_mm
    u = torch.rand((n, 2), generator=generator, dtype=positions.dtype).to(positions.device)
    return lo + (hi - lo) * u


def units_in_squares(positions: Tensor, origins: Tensor, width_mm: float, k: int,
                     generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Units inside the closed squares [origin, origin + width_mm] (mm).

    positions: [N, 2]; origins: [P, 2]. Returns ``members`` [P, K] int64, K <= k: a uniformly
    random subset of min(count, k) units of each square (in random order, then -1 padding),
    and ``counts`` [P] int64 (all units inside). The random draw is keyed on units sorted by
    position, so squares over permuted positions pick the same positions.

    Vectorized: units are sorted into horizontal bands of height width_mm / (_BANDS - 1), by
    x within a band; a square scans one contiguous x-range in each of the _BANDS bands it
    touches. Squares are processed in chunks of similar scan length.
    """
    n_units, device = positions.shape[0], positions.device
    pos = positions.double()
    lo = pos.amin(0)
    band_h = width_mm / (_BANDS - 1)
    row_len = float(pos[:, 0].max() - lo[0]) + 1.0  # > x-extent: bands never interleave
    band = torch.floor((pos[:, 1] - lo[1]) / band_h)
    key = band * row_len + (pos[:, 0] - lo[0])
    order = torch.argsort(pos[:, 1], stable=True)
    order = order[torch.argsort(key[order], stable=True)]
    key, ys = key[order].contiguous(), positions[order, 1]

    org = origins.double()
    x0 = (org[:, 0] - lo[0]).clamp(0, row_len - 1)
    x1 = (org[:, 0] + width_mm - lo[0]).clamp(0, row_len - 1)
    bands = torch.floor((org[:, 1] - lo[1]) / band_h)[:, None] + torch.arange(_BANDS, device=device)
    start = torch.searchsorted(key, (bands * row_len + x0[:, None]).contiguous())  # [P, _BANDS]
    span = torch.searchsorted(key, (bands * row_len + x1[:, None]).contiguous(), right=True) - start
    k = min(k, int(span.sum(1).max()) if span.numel() else 0)
    members = torch.full((len(origins), k), -1, dtype=torch.long, device=device)
    counts = torch.zeros(len(origins), dtype=torch.long, device=device)
    ys = torch.cat([ys, ys.new_zeros(int(span.max()) if span.numel() else 0)])  # ranges may overrun
    # Chunks of squares with similar strip lengths, so little is wasted on padding.
    by_span = torch.argsort(span.amax(1), descending=True)
    s = 0
    while s < len(origins):
        strip = int(span[by_span[s]].max())
        if strip == 0:
            break
        rows = by_span[s:s + max(1, _CHUNK_ELEMENTS // (_BANDS * strip))]
        s += len(rows)
        offsets = torch.arange(strip, device=device)
        idx = (start[rows, :, None] + offsets).flatten(1)  # [c, bands * strip]
        y = ys[idx]
        y0 = origins[rows, 1:2]
        inside = (offsets < span[rows, :, None]).flatten(1) & (y >= y0) & (y <= y0 + width_mm)
        counts[rows] = inside.sum(1)
        keys = torch.rand(idx.shape, generator=generator).to(device).masked_fill_(~inside, 2.0)
        top_keys, top = keys.topk(min(k, idx.shape[1]), dim=1, largest=False)
        chosen = order[idx.gather(1, top).clamp_max(n_units - 1)]
        members[rows, :top.shape[1]] = chosen.masked_fill_(top_keys > 1.5, -1)
    return members, counts


def nearest_units(positions: Tensor, centers: Tensor, q: int) -> Tensor:
    """[P, q] indices of the q units closest (Chebyshev distance, i.e. the smallest
    concentric square) to each centre [P, 2]."""
    out = torch.empty((len(centers), q), dtype=torch.long, device=positions.device)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, positions.shape[0]))
    for s in range(0, len(centers), chunk):
        d = (centers[s:s + chunk, None, :] - positions[None]).abs().amax(-1)
        out[s:s + chunk] = d.topk(q, dim=1, largest=False).indices
    return out


def sample_clusters(positions: Tensor, width_mm: float, n_clusters: int, keep_fraction: float,
                    min_units: int, max_units: int, generator: torch.Generator) -> Tensor:
    """TDANN's ``precompute_neighborhoods`` + ``collapse_and_trim_neighborhoods``.

    Draws n_clusters random width_mm squares (``window_origins``). The common size is
    Q = min(max(int(size quantile at 1 - keep_fraction), min_units), max_units, N); squares
    holding fewer than Q units are dropped and each kept square contributes a uniformly
    random Q-subset of its units. Where TDANN would keep nothing (every square holds fewer
    than Q units, e.g. narrow models or small inputs; TDANN crashes there), every square is
    instead grown concentrically until it holds Q units, i.e. it takes the Q units nearest
    its centre. Returns [P, Q] int64, P <= n_clusters, each row distinct units.
    """
    if n_clusters < 1:
        raise ValueError(f"n_clusters must be >= 1, got {n_clusters}")
    origins = window_origins(positions, width_mm, n_clusters, generator)
    members, counts = units_in_squares(positions, origins, width_mm, max_units, generator)
    quantile = torch.quantile(counts.double(), 1.0 - keep_fraction)
    q = min(max(int(quantile), min_units), max_units, positions.shape[0])
    keep = counts >= q
    if keep.any():
        return members[keep, :q].contiguous()
    return nearest_units(positions, origins + width_mm / 2, q)


class CorticalSheet(torch.nn.Module):
    """Positions [N, 2] float32 (mm) and clusters [P, Q] int32 of one block output (buffers;
    int32 halves what 20,000 clusters of up to 500 units add to every checkpoint).

    Loading a state_dict replaces ``clusters`` even when P or Q differ from the freshly
    built sheet, so a checkpoint restores its clusters bit-exactly. A state_dict without
    clusters (``save_model(..., clusters=False)``) marks them stale (``clusters_stale``);
    the owning model then resamples them from the loaded positions.
    """

    def __init__(self, area: str, dims: tuple[int, int, int], positions: Tensor, clusters: Tensor):
        super().__init__()
        if positions.shape != (dims[0] * dims[1] * dims[2], 2):
            raise ValueError(f"positions {tuple(positions.shape)} do not match dims {dims}")
        self.area = area
        self.dims = tuple(dims)
        self.side_mm = AREAS[area].side_mm
        self.cluster_width_mm = AREAS[area].cluster_width_mm
        self.register_buffer("positions", positions.float().contiguous())
        self.register_buffer("clusters", clusters.int().contiguous())
        self.clusters_stale = False

    @classmethod
    def build(cls, area: str, dims: tuple[int, int, int], first_height: int, config: SheetConfig,
              generator: torch.Generator) -> "CorticalSheet":
        """Retinotopic placement + clusters; first_height: H of the network's first block."""
        positions = retinotopic_positions(dims, AREAS[area].side_mm, first_height, config.jitter_mm, generator)
        return cls(area, dims, positions, cls._clusters(positions, area, config, generator))

    @staticmethod
    def _clusters(positions: Tensor, area: str, config: SheetConfig, generator: torch.Generator) -> Tensor:
        return sample_clusters(positions, AREAS[area].cluster_width_mm, config.n_clusters,
                               config.keep_fraction, config.min_units, config.max_units, generator)

    def sample(self, m: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """[m, Q] rows of ``clusters`` drawn uniformly with replacement (global RNG when
        generator is None; the draw happens on the generator's device)."""
        device = generator.device if generator is not None else self.clusters.device
        rows = torch.randint(len(self.clusters), (m,), generator=generator, device=device)
        return self.clusters[rows.to(self.clusters.device)]

    def set_positions(self, positions: Tensor, config: SheetConfig,
                      generator: Optional[torch.Generator] = None) -> None:
        """Replace positions [N, 2] (mm; e.g. after swap optimization) and resample the
        clusters with ``config``; generator defaults to one seeded with config.seed."""
        if positions.shape != self.positions.shape:
            raise ValueError(f"positions {tuple(positions.shape)} != {tuple(self.positions.shape)}")
        if generator is None:
            generator = torch.Generator().manual_seed(config.seed)
        positions = positions.detach().to(self.positions)
        clusters = self._clusters(positions.cpu(), self.area, config, generator)
        self.positions = positions.contiguous()
        self.clusters = clusters.to(self.clusters)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        incoming = state_dict.get(prefix + "clusters")
        self.clusters_stale = incoming is None and prefix + "positions" in state_dict
        if self.clusters_stale:
            state_dict[prefix + "clusters"] = self.clusters
        elif incoming is not None and incoming.shape != self.clusters.shape:
            self.clusters = self.clusters.new_empty(incoming.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f"area={self.area}, dims={self.dims}, side_mm={self.side_mm}, "
                f"clusters={tuple(self.clusters.shape)}")


def build_sheets(block_dims: Mapping[str, tuple[int, int, int]], config: SheetConfig,
                 areas: Mapping[str, str] = BLOCK_AREAS) -> torch.nn.ModuleDict:
    """One ``CorticalSheet`` per block of ``block_dims`` (block name -> (C, H, W)), keyed by
    ``sheet_key``, in the order of ``areas`` (block name -> cortical area, in forward order;
    ResNet-18's by default). first_height is H of the first block present (layer1.0 in a
    full ResNet-18). One generator seeded with config.seed drives all sheets."""
    generator = torch.Generator().manual_seed(config.seed)
    blocks = [b for b in areas if b in block_dims]
    unknown = set(block_dims) - set(blocks)
    if unknown:
        raise ValueError(f"no cortical area for blocks {sorted(unknown)}")
    sheets = torch.nn.ModuleDict()
    if not blocks:
        return sheets
    first_height = block_dims[blocks[0]][1]
    for block in blocks:
        sheets[sheet_key(block)] = CorticalSheet.build(
            areas[block], tuple(block_dims[block]), first_height, config, generator)
    return sheets


def model_sheet(model: torch.nn.Module, block: str) -> CorticalSheet:
    """The cortical sheet of ``block``: the model's own, or for models without sheets the
    initial retinotopic (unswapped) sheet its topographic twin of the same block sizes
    gets, so that topography of non-topographic models is measured on the same positions."""
    if hasattr(model, "sheets"):
        return model.sheets[sheet_key(block)]
    sheets = build_sheets(model.block_dims(), model.config.sheet or SheetConfig(), model.block_areas)
    return sheets[sheet_key(block)]
