"""Process-group setup for ``torchrun`` (gloo on CPU, nccl on GPU) and small helpers.

Single process: rank 0 of 1, nothing initialised. Under torchrun (``WORLD_SIZE`` > 1),
multi-node included through torchrun's rendezvous flags, each process binds to its
``LOCAL_RANK`` GPU when GPUs exist.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> Context:
    """The process's context under torchrun (or alone): ``device`` auto/cpu/cuda; on CUDA each
    process takes ``cuda:LOCAL_RANK``."""
    from csi.utils import resolve_device

    world = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = resolve_device(device).type == "cuda"
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=60))
    return Context(rank, world, local_rank, dev)


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def any_true(ctx: Context, flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any rank."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast_object(ctx: Context, obj):
    """``obj`` from rank 0 on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def cleanup(ctx: Context) -> None:
    """Leave the process group together: a rank that destroys it while another still talks
    to it can abort at exit (gloo: "terminate called without an active exception")."""
    if ctx.distributed and dist.is_initialized():
        try:  # bounded wait: a rank that failed alone must not hang the others here
            if dist.get_backend() == "gloo":
                dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
            else:
                dist.barrier()
        except RuntimeError:
            pass
        finally:
            dist.destroy_process_group()
