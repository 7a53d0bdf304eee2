"""Batch-norm recalibration: re-estimate running statistics of one subnet on a few batches.

Shared BN statistics are a mixture over every subnet trained; a subnet's own statistics, measured
on a few training batches, make its accuracy meaningful (once-for-all does the same).
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from nas._arch import Arch
from nas._model import Network

Batch = torch.Tensor | tuple[torch.Tensor, ...] | list[torch.Tensor]
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
"""The batch norms `recalibrate_bn` re-estimates (torch's public classes)."""


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """`x` bilinearly resized to ``resolution``×``resolution`` (unchanged when it already is)."""
    if tuple(x.shape[-2:]) == (resolution, resolution):
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                         antialias=resolution < x.shape[-1])


@torch.no_grad()
def forward_batches(net: nn.Module, batches: Iterable[Batch], resolution: int | None = None) -> int:
    """Run `net` on every batch (images, or ``(images, labels)`` pairs), resized to `resolution` when
    given, for the statistics it gathers; the number of batches."""
    seen = 0
    for batch in batches:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        net(resize(x, resolution) if resolution else x)
        seen += 1
    return seen


@torch.no_grad()
def recalibrate_bn(net: nn.Module, batches: Iterable[Batch], resolution: int | None = None) -> nn.Module:
    """Reset every batch norm of `net` and set its running statistics to the exact average over
    `batches` (images, or ``(images, labels)`` pairs), resized to `resolution` when given.

    Weights are untouched; `net` is returned in eval mode.
    """
    norms = [m for m in net.modules() if isinstance(m, BATCH_NORMS)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
    net.train()
    try:
        seen = forward_batches(net, batches, resolution)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    if seen == 0 and norms:
        raise ValueError("recalibrate_bn needs at least one batch")
    return net.eval()


def recalibrated(supernet: nn.Module, arch: Arch, batches: Iterable[Batch]) -> Network:
    """`extract(supernet, arch)` with its batch norms recalibrated on `batches` (the supernet's
    shared statistics are left alone); channels-last, the fast layout for depthwise convs on CPU."""
    from nas.supernet._extract import extract

    net = extract(supernet, arch).to(memory_format=torch.channels_last)
    return recalibrate_bn(net, batches, arch.resolution)


__all__ = ["forward_batches", "recalibrate_bn", "recalibrated", "resize"]
