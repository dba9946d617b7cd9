"""Several processes (``torchrun``): each takes a slice of the meta-batch, gradients are averaged.

An all-reduce of meta-gradients rather than DistributedDataParallel: second-order
inner loops call ``torch.autograd.grad`` inside the forward, which DDP's hooks do not
expect. Buffers (BatchNorm running statistics) follow rank 0, as with DDP.

Several machines are torchrun's business (``--nnodes``, c10d rendezvous): a process here sees only
its ``RANK`` and ``WORLD_SIZE``. An elastic restart re-runs the same command; ``Trainer`` then
continues from ``last/`` (``runs.continues_after_restart``) and ``agree`` checks that every process
restored the same state.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger("fewshot")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_writer(self) -> bool:
        return self.rank == 0


def init_world(device: str) -> World:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); else one process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    restarts = int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0"))
    if restarts and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and os.environ.get("RANK") == "0":
        log.warning(
            "torchrun --max-restarts %d with its rendezvous store shared: a restarted group may read the old "
            "group's addresses and fail to connect (pytorch/pytorch#135712); "
            "export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 before torchrun",
            restarts,
        )
    if not dist.is_initialized():
        # NCCL for CUDA tensors, gloo for the small CPU ones (metrics, flags)
        dist.init_process_group(backend="cpu:gloo,cuda:nccl" if device.startswith("cuda") else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def average_gradients(module: nn.Module, world: World) -> None:
    """Mean of each parameter's gradient over processes (missing gradients count as zero)."""
    if world.size == 1:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= world.size
    for p, g in zip(params, torch.split(flat, [g.numel() for g in grads])):
        p.grad = g.view_as(p).clone()


def sync_buffers(module: nn.Module, world: World) -> None:
    if world.size > 1:
        for b in module.buffers():
            dist.broadcast(b, src=0)


def mean_metrics(metrics: dict[str, float], world: World) -> dict[str, float]:
    if world.size == 1 or not metrics:
        return metrics
    keys = sorted(metrics)
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(values)
    return dict(zip(keys, (values / world.size).tolist()))


def any_rank(flag: bool, world: World) -> bool:
    """Whether ``flag`` holds on any process, so that all of them take the same branch."""
    if world.size == 1:
        return flag
    value = torch.tensor([float(flag)])
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def agree(values: list[float], world: World) -> bool:
    """Whether every process holds the same ``values`` (the same list length on each)."""
    if world.size == 1:
        return True
    low = torch.tensor(values, dtype=torch.float64)
    high = low.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    return torch.equal(low, high)


def close_world(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
