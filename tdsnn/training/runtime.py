"""Where a run executes: this process's rank and device, and the torchrun process group.

Under ``torchrun`` (``WORLD_SIZE`` > 1) every process joins one group, NCCL on CUDA and
gloo on CPU; ``session`` leaves it again however the run ends. A session inside another
(the trainings of a ``tdsnn-sweep``, one after another in one torchrun world) uses the
group the outer one joined and leaves it to that one.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class Runtime:
    """This process's rank among ``world`` processes and its device."""
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Whether this process writes files, validates and runs the swap stage."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def all_true(self, flag: bool) -> bool:
        """``flag`` on every process (a collective: every rank must call it)."""
        value = torch.tensor(float(flag), device=self.device)
        if self.world > 1:
            dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item() > 0)


def init_runtime(device: str) -> Runtime:
    """Process group from torchrun's environment (NCCL on CUDA, gloo on CPU) and this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    rank = 0
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
        rank = dist.get_rank()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return Runtime(rank, world, torch.device("cuda", local))
    return Runtime(rank, world, torch.device("cpu"))


@contextlib.contextmanager
def session(device: str) -> Iterator[Runtime]:
    """``init_runtime(device)`` for the duration of a ``with`` block; the process group it
    joined is destroyed on leaving it, whether the block returns early, finishes or raises
    (one joined by an enclosing session is left to that session)."""
    joined = not (dist.is_available() and dist.is_initialized())
    rt = init_runtime(device)
    try:
        yield rt
    finally:
        if joined and rt.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def rank_fingerprints(model: nn.Module) -> list[float]:
    """A float64 checksum of the parameters from every rank; raises if ranks diverged."""
    local = torch.stack([p.detach().double().sum() * (i + 1) for i, p in enumerate(model.parameters())]).sum()
    gathered = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local.to(next(model.parameters()).device))
    values = [float(v) for v in gathered]
    if len(set(values)) != 1:
        raise RuntimeError(f"DDP ranks diverged: parameter checksums {values}")
    return values
