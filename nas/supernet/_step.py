"""One supernet training step (sandwich rule, in-place distillation) and its distributed helpers.

`sandwich_backward` is the whole forward/backward of a step: the first arch (the phase's largest)
learns from the labels and becomes the teacher, every other arch learns from the labels plus a
distillation loss towards the teacher's logits; gradients accumulate before one optimizer step.
`train_supernet` and the step-rate benchmark (``experiments/benchmarks/supernet_step_rate.py``)
both run it, so the benchmark times exactly what training runs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nas._arch import Arch
from nas._space import SearchSpace
from nas.supernet._bn import resize
from nas.supernet._supernet import Supernet, largest_arch, smallest_arch

if TYPE_CHECKING:
    from nas.supernet._config import Phase


def lr_at(phase: "Phase", step: int) -> float:
    """Linear warmup then cosine decay to zero over the phase (a pure function of the step)."""
    if step < phase.warmup_steps:
        return phase.lr * (step + 1) / phase.warmup_steps
    span = max(1, phase.steps - phase.warmup_steps)
    return 0.5 * phase.lr * (1 + math.cos(math.pi * (step - phase.warmup_steps) / span))


def sandwich(space: SearchSpace, rng: np.random.Generator, num_random: int) -> list[Arch]:
    """The largest, the smallest and `num_random` random archs of `space`, duplicates dropped."""
    archs = [largest_arch(space), smallest_arch(space)] + [space.sample(rng) for _ in range(num_random)]
    return list(dict.fromkeys(archs))


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL divergence between softened teacher and student distributions, scaled by T²."""
    t = temperature
    return F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean") * t * t


def sandwich_backward(supernet: Supernet, x: torch.Tensor, y: torch.Tensor, archs: Sequence[Arch], *,
                      label_smoothing: float, kd_weight: float, kd_temperature: float) -> tuple[float, float]:
    """Forward and backward every arch of `archs` on the batch ``(x, y)``, accumulating gradients
    (the caller zeroes them before and steps the optimizer after). The first arch is the teacher.
    Returns the mean loss over the archs and the teacher's batch accuracy."""
    teacher, total_loss, acc = None, 0.0, 0.0
    for arch in archs:
        logits = supernet(resize(x, arch.resolution), arch)
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        if teacher is None:
            teacher = logits.detach()
            acc = float((teacher.argmax(1) == y).float().mean())
        elif kd_weight > 0:
            loss = loss + kd_weight * kd_loss(logits, teacher, kd_temperature)
        loss.backward()
        total_loss += loss.item()
    return total_loss / len(archs), acc


# ---------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class Dist:
    """This process's rank and the number of processes (1 without torchrun)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """Join the torchrun process group (gloo) when ``WORLD_SIZE`` > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


def _all_reduce_mean(tensors: list[torch.Tensor], world: int) -> None:
    """Replace each tensor by its mean over the ranks, in one flat all-reduce."""
    import torch.distributed as dist

    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def average_gradients(supernet: Supernet, world: int) -> None:
    """Average the gradients over the ranks. Every rank trained the same subnets, so the set of
    parameters with a gradient is the same everywhere."""
    _all_reduce_mean([p.grad for p in supernet.parameters() if p.grad is not None], world)


def sync_buffers(supernet: Supernet, world: int) -> None:
    """Average floating-point buffers (BN running statistics) so replicas stay identical."""
    _all_reduce_mean([b for b in supernet.buffers() if b.is_floating_point()], world)


def optimizer_step(supernet: Supernet, optimizer: torch.optim.Optimizer, grad_clip: float, world: int) -> None:
    """Average the gradients over the `world` ranks, clip their norm to `grad_clip` (0: no clipping),
    step, then average the BN buffers so that the replicas stay identical."""
    if world > 1:
        average_gradients(supernet, world)
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(supernet.parameters(), grad_clip)
    optimizer.step()
    if world > 1:
        sync_buffers(supernet, world)


def broadcast_state(supernet: Supernet) -> None:
    """Rank 0's parameters and buffers everywhere."""
    import torch.distributed as dist

    for t in list(supernet.parameters()) + list(supernet.buffers()):
        dist.broadcast(t.data, 0)


__all__ = ["Dist", "average_gradients", "broadcast_state", "init_distributed", "kd_loss", "lr_at", "optimizer_step",
           "sandwich", "sandwich_backward", "sync_buffers"]
