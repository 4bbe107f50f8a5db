"""TSResNet18: SResNet18 with cortical sheets on the 8 block outputs and the STC loss (METHOD.md §2-3)."""
from __future__ import annotations

from typing import Mapping, Optional

import torch

from ..config import BLOCKS, ModelConfig
from ..sheets import CorticalSheet, build_sheets, sheet_key
from ..stc import STCLoss
from .sresnet import SResNet18


class TSResNet18(SResNet18):
    """Topographic spiking ResNet-18.

    ``sheets`` holds one ``CorticalSheet`` per block (positions in mm, clusters); their
    sizes come from a probe forward at ``config.input_size``. Positions and clusters
    are buffers, so they are saved and restored with the state_dict; weights saved
    without clusters get them resampled from their positions on loading.
    """

    def __init__(self, config: ModelConfig):
        if config.sheet is None or config.stc is None:
            raise ValueError(f"{config.arch} needs sheet and stc options")
        super().__init__(config)
        self.sheets = build_sheets(self.block_dims(), config.sheet)
        self.stc = STCLoss(config.stc, config.timesteps)
        self.register_load_state_dict_post_hook(TSResNet18._resample_stale_clusters)

    def _resample_stale_clusters(self, _incompatible) -> None:
        """After loading weights saved without clusters: resample them from the loaded positions."""
        for sheet in self.sheets.values():
            if sheet.clusters_stale:
                sheet.set_positions(sheet.positions, self.config.sheet)
                sheet.clusters_stale = False

    def sheet(self, block: str) -> CorticalSheet:
        return self.sheets[sheet_key(block)]

    def sheets_by_block(self) -> dict[str, CorticalSheet]:
        """``{block name: sheet}`` for the 8 residual blocks."""
        return {block: self.sheet(block) for block in BLOCKS}

    def topo_loss(self, blocks: Mapping[str, torch.Tensor],
                  generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, dict[str, float]]:
        """STC loss over M random clusters per constrained block; ``blocks`` from ``forward_blocks``."""
        out = self.stc(blocks, self.sheets_by_block(), generator=generator)
        return out.total, {"stc_rate": float(out.rate), "stc_sync": float(out.sync)}
