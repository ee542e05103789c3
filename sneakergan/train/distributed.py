"""Multi-process training (torchrun): where this process sits, gradient averaging, weight broadcast.

Every rank holds full copies and averages gradients with one all-reduce per phase (the reference's scheme;
DistributedDataParallel cannot take the double backward of R1 / path length). Rank 0 writes every file.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from ..errors import UserError


@dataclasses.dataclass
class Dist:
    """Where this process sits in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return t
        import torch.distributed as dist

        dev = torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")
        out = t.to(dev).clone()
        dist.all_reduce(out)
        return out.to(t.device)

    def all_reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        return self.all_reduce_sum(t) / self.world_size

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()


def init_distributed(device_spec: str) -> tuple[Dist, torch.device]:
    """Read RANK / WORLD_SIZE / LOCAL_RANK (set by torchrun), start the process group, pick the device."""
    d = Dist(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))
    if device_spec == "auto":
        device = torch.device("cuda", d.local_rank) if torch.cuda.is_available() else torch.device("cpu")
    else:
        try:
            device = torch.device(device_spec)
        except RuntimeError:
            raise UserError(f"--device {device_spec!r}: use auto, cpu, cuda or cuda:N") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda requested but CUDA is not available (use cpu or auto)")
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", d.local_rank)
        if device.type == "cuda" and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {device_spec}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        if device.type not in ("cpu", "cuda"):
            raise UserError(f"--device {device_spec!r}: use auto, cpu, cuda or cuda:N")
    if d.enabled:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return d, device


def sync_grads(params: list[torch.nn.Parameter], dist_info: Dist) -> None:
    """Average gradients over processes with one flat all-reduce."""
    if not dist_info.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    flat = dist_info.all_reduce_mean(flat)
    for g, new in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(new.view_as(g))


def broadcast_module(module: torch.nn.Module, dist_info: Dist) -> None:
    """Rank 0's weights and buffers on every rank."""
    if not dist_info.enabled:
        return
    import torch.distributed as dist

    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)
