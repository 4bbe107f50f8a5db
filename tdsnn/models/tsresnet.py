"""TSResNet18: SResNet18 with cortical sheets on the 8 block outputs and the STC loss (docs/method.md §2-3)."""
from __future__ import annotations

from .sresnet import SResNet18
from .topographic_snn import TopographicSNN


class TSResNet18(TopographicSNN, SResNet18):
    """Topographic spiking ResNet-18: one sheet per residual block (``tdsnn.sheets.BLOCK_AREAS``)."""
