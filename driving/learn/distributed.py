"""Multi-GPU and multi-node training: PyTorch DDP under `torchrun`, same `drive train` command.

    torchrun --standalone --nproc_per_node 4 -m driving.cli -- train --data D --run R   # 4 GPUs
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 \\
        --rdzv_id R -m driving.cli -- train --data D --run R                # on each of 2 nodes

The `--` keeps torchrun's own parser from taking `--run` for its `--run-path`.

torchrun starts one process per GPU (a "rank") and tells it RANK, LOCAL_RANK and WORLD_SIZE in the
environment; without them, training runs as one ordinary process. Every rank draws the same
global sample order (same seed) and takes its own contiguous share of each global batch, so the
global batch, and with DDP's averaged gradients the update, is that of one process. Rank 0 alone
validates, writes checkpoints, TensorBoard and prints; the other ranks' stdout is silenced.
Backend: NCCL on CUDA (one GPU per rank: cuda:LOCAL_RANK), gloo on the CPU.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


class DistributedError(ValueError):
    """Bad torchrun environment or settings that cannot be split over the ranks."""


@dataclass(frozen=True)
class Ranks:
    """Where this process sits in the job (one process: rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that validates, saves, logs and prints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """More than one process takes part."""
        return self.world_size > 1


def ranks_from_env() -> Ranks:
    """Read torchrun's RANK, LOCAL_RANK and WORLD_SIZE (absent: one process).

    Raises:
        DistributedError: a variable is not a number or the three do not fit together.
    """
    values = {}
    for name, default in (("RANK", 0), ("LOCAL_RANK", 0), ("WORLD_SIZE", 1)):
        raw = os.environ.get(name, str(default))
        try:
            values[name] = int(raw)
        except ValueError:
            raise DistributedError(f"environment variable {name}={raw!r} is not a number") from None
    ranks = Ranks(values["RANK"], values["LOCAL_RANK"], values["WORLD_SIZE"])
    if ranks.world_size < 1 or not 0 <= ranks.rank < ranks.world_size or ranks.local_rank < 0:
        raise DistributedError(
            f"RANK={ranks.rank} LOCAL_RANK={ranks.local_rank} WORLD_SIZE={ranks.world_size} "
            "do not fit together; launch with torchrun"
        )
    return ranks


def setup(ranks: Ranks, device: torch.device, batch_size: int) -> torch.device:
    """Join the process group (if several ranks) and return this rank's device.

    On CUDA each rank takes GPU LOCAL_RANK, whatever index the --device flag named.

    Raises:
        DistributedError: fewer frames per global batch than ranks, or too few GPUs.
    """
    if not ranks.enabled:
        return device
    if batch_size < ranks.world_size:
        raise DistributedError(
            f"--batch-size {batch_size} is smaller than the {ranks.world_size} processes; every "
            "process needs at least one frame per step"
        )
    if device.type == "cuda":
        if ranks.local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"LOCAL_RANK {ranks.local_rank} but only {torch.cuda.device_count()} GPU(s) here; "
                "start at most one process per GPU (--nproc_per_node)"
            )
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=ranks.rank, world_size=ranks.world_size)
    if not ranks.is_main:
        sys.stdout = open(os.devnull, "w")  # one copy of every line is enough: rank 0s
    return device


def wrap(model: torch.nn.Module, ranks: Ranks, device: torch.device) -> torch.nn.Module:
    """The module to train: `model` itself, or a DDP wrapper that averages gradients."""
    if not ranks.enabled:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def shard(idx: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """This rank's contiguous share of a global batch's indices (sizes differ by at most 1)."""
    if not ranks.enabled:
        return idx
    return torch.tensor_split(idx, ranks.world_size)[ranks.rank]


def all_sum(value: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """The sum of `value` over all ranks (a new tensor; `value` itself with one process)."""
    if not ranks.enabled:
        return value
    total = value.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def finish(ranks: Ranks) -> None:
    """Wait for every rank, then leave the process group (no-op with one process)."""
    if ranks.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
