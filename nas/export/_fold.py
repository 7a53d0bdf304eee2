"""Fold batch norm into the preceding convolution (what every inference runtime does)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def fold_bn(module: nn.Module) -> nn.Module:
    """A copy of `module` in eval mode with each ``Conv2d -> BatchNorm2d`` pair of an ``nn.Sequential``
    merged into one biased conv (the BN replaced by ``Identity``). The input is left untouched.

    Only pairs that are consecutive children of an ``nn.Sequential`` are folded, so the rewrite can
    never change what a custom ``forward`` computes.
    """
    folded = copy.deepcopy(module).eval()
    for parent in folded.modules():
        if not isinstance(parent, nn.Sequential):
            continue
        names = list(parent._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = parent._modules[first], parent._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                parent._modules[first] = _merge(conv, bn)
                parent._modules[second] = nn.Identity()
    return folded


@torch.no_grad()
def _merge(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1.0 / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale if bn.affine else -bn.running_mean * scale
    merged = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                       conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
    merged.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
    merged.bias.copy_(bias * scale + shift)
    return merged.eval()
