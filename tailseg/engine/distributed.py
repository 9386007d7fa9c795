"""Distributed data parallel through torchrun: gloo on CPU, NCCL on CUDA.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them everything runs in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init(device: str = "auto") -> Dist:
    """Join the process group torchrun describes (if any) and pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(rank, world, local, dev)


def gather_objects(d: Dist, obj: Any, dst: int = 0) -> list[Any] | None:
    """Every rank's `obj` (pickled), in rank order, on rank `dst`; None on the others."""
    if not d.enabled:
        return [obj]
    out: list[Any] | None = [None] * d.world_size if d.rank == dst else None
    dist.gather_object(obj, out, dst=dst)
    return out


def broadcast_object(d: Dist, obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank (the others pass anything, e.g. None)."""
    if not d.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def shutdown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_true(d: Dist, ok: bool) -> bool:
    """Whether `ok` holds on every rank (each rank passes its own)."""
    if not d.enabled:
        return ok
    flag = torch.tensor([1.0 if ok else 0.0], device=d.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())
