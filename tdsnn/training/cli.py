"""tdsnn-train: the TDSNN training pipeline (docs/method.md §4) as resumable stages.

    tsresnet18, tscornet, tspikformer
                       aux (train the spiking twin: sresnet18, scornet, spikformer)
                       -> swap (grating rates -> swapped positions)
                       -> train (from scratch, task loss + STC)
    sresnet18, scornet, spikformer, resnet18
                       train (task loss)
    toponet_resnet18   train (task loss + TopoLoss)

Each stage writes into ``OUT/<stage>/`` and ends with ``stage.json``; a finished stage
whose recorded config matches is skipped, one that does not match is refused.
Options come from the dataclass defaults, then ``--config FILE.yaml``, then CLI flags;
the resolved config is written to ``OUT/config.yaml`` once the run is accepted.
Distributed training runs under ``torchrun`` (NCCL on CUDA, gloo on CPU).

    tdsnn-train --model tsresnet18 --data fmnist --epochs 5 --out runs/tsresnet18-fmnist
    torchrun --nproc_per_node 8 -m tdsnn.train --model tsresnet18 --data imagenet:/data/imagenet

Exit status: 0 done (or stopped at --max-steps); 2 bad input or a refused run, before
anything is written; 3 a loss, weight or optimizer value became NaN or infinite (resume
with --resume --resume-lr X).
"""
from __future__ import annotations

import shlex
import sys

from ..checkpoint import CheckpointError
from ..data import DataError
from ..names import InvalidName
from ..registry import UnknownModelError
from .config import ConfigError, parse_args
from .loop import NonFiniteLoss
from .pipeline import train_pipeline


def one_line(err: BaseException) -> str:
    """The reason of ``err`` on one line. An error re-raised from a DataLoader worker
    carries the worker's traceback; its last line is the original message."""
    lines = str(err).strip().splitlines() or [type(err).__name__]
    prefix = f"{type(err).__module__}.{type(err).__qualname__}: "
    return lines[-1].removeprefix(prefix)


def main(argv=None) -> int:
    """Run ``tdsnn-train`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    command = "tdsnn-train " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        cfg, resume = parse_args(argv, description=__doc__)
        train_pipeline(cfg, resume=resume, command=command)
    except NonFiniteLoss as err:
        print(f"tdsnn-train: {err}", file=sys.stderr)
        return 3
    except (ConfigError, CheckpointError, DataError, UnknownModelError, InvalidName) as err:
        print(f"tdsnn-train: {one_line(err)}", file=sys.stderr)
        return 2
    return 0
