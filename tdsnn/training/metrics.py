"""Per-epoch training metrics: running means over an epoch, and the stage's metrics files.

An epoch's running sums travel in the resumable state, so the row of an epoch that was
interrupted and resumed covers all its batches. The files are rewritten from the rows the
latest checkpoint holds, so a resumed run never repeats or loses a row.
"""
from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any, Optional

import torch

from ..checkpoint import atomic_write_text


class EpochMeter:
    """Sums of the scalar training logs over the batches of the current epoch so far, and
    the seconds spent on it (across resumes)."""

    def __init__(self, saved: Optional[dict[str, Any]] = None):
        saved = saved or {}
        self.sums: dict[str, float] = dict(saved.get("sums", {}))
        self.batches: int = saved.get("batches", 0)
        self._seconds: float = saved.get("seconds", 0.0)
        self._since = time.monotonic()

    def add(self, logs: dict[str, torch.Tensor]) -> None:
        """Add one batch's scalar logs."""
        self.batches += 1
        for key, value in logs.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)

    def means(self) -> dict[str, float]:
        return {key: value / max(1, self.batches) for key, value in self.sums.items()}

    def seconds(self) -> float:
        return self._seconds + time.monotonic() - self._since

    def state(self) -> dict[str, Any]:
        """What a checkpoint stores to continue this epoch's sums."""
        return {"sums": dict(self.sums), "batches": self.batches, "seconds": self.seconds()}

    def row(self, epoch: int, step: int, lr: float) -> dict[str, Any]:
        """The epoch's metrics row: epoch (1-based), step, learning rate, ``train_<log>`` means, seconds."""
        return {"epoch": epoch, "step": step, "lr": lr, **{f"train_{k}": v for k, v in self.means().items()},
                "seconds": self.seconds()}


def write_metrics(directory: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` (one per epoch) to ``metrics.jsonl`` and ``metrics.csv`` in ``directory``."""
    lines = "".join(json.dumps(row) + "\n" for row in rows)
    atomic_write_text(directory / "metrics.jsonl", lines)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(directory / "metrics.csv", table.getvalue())
