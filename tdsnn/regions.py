"""The ventral-stream regions that models map layers to, in processing order."""
from __future__ import annotations

#: Brain-Score regions, early to late.
REGIONS: tuple[str, ...] = ("V1", "V2", "V4", "IT")
