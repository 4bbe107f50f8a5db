"""The TDSNN construction for any spiking backbone: cortical sheets on its blocks and
the STC loss (docs/method.md §2-3)."""
from __future__ import annotations

from typing import Mapping, Optional

import torch

from ..config import ModelConfig
from ..sheets import CorticalSheet, build_sheets, sheet_key
from ..stc import STCLoss


class TopographicSNN:
    """Mixin, listed before a spiking ``Backbone``: ``class TSNet(TopographicSNN, SNet)``.

    ``sheets`` holds one ``CorticalSheet`` per block (``backbone.block_areas`` gives its
    area, hence sheet side and cluster width; sizes come from a probe forward at
    ``config.input_size``). Positions and clusters are buffers, so they are saved and
    restored with the state_dict; weights saved without clusters get them resampled from
    their positions on loading. ``config.stc.layers`` must name blocks of the backbone.
    """

    def __init__(self, config: ModelConfig):
        if config.sheet is None or config.stc is None:
            raise ValueError(f"{config.arch} needs sheet and stc options")
        super().__init__(config)
        unknown = [layer for layer in config.stc.layers if layer not in self.block_areas]
        if unknown:
            raise ValueError(f"{config.arch}: stc.layers {unknown} are not blocks of this model; "
                             f"its blocks are {', '.join(self.block_names)}")
        self.sheets = build_sheets(self.block_dims(), config.sheet, self.block_areas)
        self.stc = STCLoss(config.stc, config.timesteps)
        self.register_load_state_dict_post_hook(TopographicSNN._resample_stale_clusters)

    def _resample_stale_clusters(self, _incompatible) -> None:
        """After loading weights saved without clusters: resample them from the loaded positions."""
        for sheet in self.sheets.values():
            if sheet.clusters_stale:
                sheet.set_positions(sheet.positions, self.config.sheet)
                sheet.clusters_stale = False

    def sheet(self, block: str) -> CorticalSheet:
        return self.sheets[sheet_key(block)]

    def sheets_by_block(self) -> dict[str, CorticalSheet]:
        """``{block name: sheet}`` for every block, in forward order."""
        return {block: self.sheet(block) for block in self.block_names}

    def topo_loss(self, blocks: Mapping[str, torch.Tensor],
                  generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, dict[str, float]]:
        """STC loss over M random clusters per constrained block; ``blocks`` from ``forward_blocks``."""
        out = self.stc(blocks, self.sheets_by_block(), generator=generator)
        return out.total, {"stc_rate": float(out.rate), "stc_sync": float(out.sync)}
