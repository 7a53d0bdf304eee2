"""Dynamic MBConv block: one set of max-size weights, sliced per call for the spec it is given.

The active configuration is always an argument (`forward(x, spec)`); modules hold weights only.
Kernels are center-cropped from the largest one and passed through learned transformation
matrices (7→5: 25×25, 5→3: 9×9, identity at start), as in once-for-all. Expanded channels are the
first ``in_channels * expand`` ones; batch norm uses the matching slices of its running statistics
(updated in place in training mode); squeeze-excite uses ``spec.se_channels(in_channels)`` of them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from nas._arch import BlockSpec
from nas._errors import HwnasError
from nas._model import ConvBNAct, SqueezeExcite

_ACTS = {"relu": F.relu, "relu6": F.relu6, "hswish": F.hardswish}


class SupernetError(HwnasError, ValueError):
    """A space, arch or checkpoint the supernet cannot handle; the message names it."""


class BNParams(NamedTuple):
    """Batch-norm tensors of the active channels (views of the full buffers)."""

    weight: torch.Tensor
    bias: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor


class ActiveWeights(NamedTuple):
    """Every tensor of one `Block` at one spec, named as in the static `Block`'s state dict."""

    expand: torch.Tensor  # (mid, cin, 1, 1)
    expand_bn: BNParams
    dw: torch.Tensor  # (mid, 1, k, k), transformed
    dw_bn: BNParams
    se: tuple[torch.Tensor, ...] | None  # SE_NAMES: reduce w/b, expand w/b
    project: torch.Tensor  # (out, mid, 1, 1)
    project_bn: BNParams


SE_NAMES = ("reduce.weight", "reduce.bias", "expand.weight", "expand.bias")
"""State-dict names (under ``se.``) of the squeeze-excite tensors `slice_se` returns."""


def center_crop(weight: torch.Tensor, k: int) -> torch.Tensor:
    """The centre `k`×`k` taps of a square kernel (a view): a smaller kernel of shared weights."""
    start = (weight.shape[-1] - k) // 2
    return weight[..., start:start + k, start:start + k]


def slice_se(se: SqueezeExcite, mid: int, reduced: int) -> tuple[torch.Tensor, ...]:
    """The squeeze-excite tensors (`SE_NAMES`) of the first `mid` channels and `reduced` bottleneck ones."""
    return (se.reduce.weight[:reduced, :mid], se.reduce.bias[:reduced],
            se.expand.weight[:mid, :reduced], se.expand.bias[:mid])


def _bn_slice(bn: nn.BatchNorm2d, n: int) -> BNParams:
    return BNParams(bn.weight[:n], bn.bias[:n], bn.running_mean[:n], bn.running_var[:n])


def reachable_taps(weight: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The centre of an odd, same-padded depthwise `weight` that can reach a `height`×`width` map.

    Every output centre lies on the map, so a tap more than ``size - 1`` pixels from the centre
    only ever reads zero padding: cropping it (and its padding) leaves the output, the output size
    and every gradient unchanged (the cropped taps get the zero gradient they would get anyway),
    while a 7×7 kernel on the 1×1 and 2×2 maps of 28 px inputs shrinks to 1×1 and 3×3, whose
    backward pass is 5-100x faster on CPU.
    """
    kh, kw = weight.shape[-2:]
    th, tw = min(kh, 2 * height - 1), min(kw, 2 * width - 1)
    if (th, tw) == (kh, kw) or kh % 2 == 0 or kw % 2 == 0:
        return weight
    top, left = (kh - th) // 2, (kw - tw) // 2
    return weight[:, :, top:top + th, left:left + tw]


def _transform_name(big: int, small: int) -> str:
    return f"{big}to{small}"


class DynamicMBBlock(nn.Module):
    """An MBConv layer whose kernel and expand ratio are chosen per call.

    Children mirror the static `nas._model.Block` (``expand``, ``dw``, ``se``, ``project``) at the
    largest kernel and expand ratio, plus ``kernel_transforms`` (one square matrix per step down
    the kernel options, e.g. ``7to5`` and ``5to3``).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, act: str, se: float,
                 kernels: tuple[int, ...], expands: tuple[int, ...]) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride, self.act, self.se_ratio = (
            in_channels, out_channels, stride, act, float(se))
        self.kernels = tuple(sorted(set(kernels), reverse=True))
        self.expands = tuple(sorted(set(expands)))
        self.max_kernel, self.max_expand = self.kernels[0], self.expands[-1]
        max_spec = BlockSpec("mb", self.max_kernel, stride, out_channels, self.max_expand, se, False, act)
        mid = max_spec.mid_channels(in_channels)
        self.expand = ConvBNAct(in_channels, mid, 1, act=act)
        self.dw = ConvBNAct(mid, mid, self.max_kernel, stride, groups=mid, act=act)
        if se:
            self.se = SqueezeExcite(mid, max_spec.se_channels(in_channels))
        self.project = ConvBNAct(mid, out_channels, 1, act=None)
        self.kernel_transforms = nn.ParameterDict({
            _transform_name(big, small): nn.Parameter(torch.eye(small * small))
            for big, small in zip(self.kernels, self.kernels[1:])})

    def check(self, spec: BlockSpec) -> None:
        """Raise `SupernetError` if `spec` is not a configuration of this block."""
        fixed = (spec.op, spec.stride, spec.out_channels, spec.se, spec.act)
        ours = ("mb", self.stride, self.out_channels, self.se_ratio, self.act)
        if fixed != ours:
            raise SupernetError(f"block spec {spec.short()} ({spec.act}) does not fit a supernet layer "
                                f"mb s{self.stride} c{self.out_channels} se{self.se_ratio:g} {self.act}")
        if spec.kernel not in self.kernels or spec.expand not in self.expands:
            raise SupernetError(f"block spec {spec.short()}: kernel must be one of {sorted(self.kernels)} "
                                f"and expand one of {list(self.expands)}")
        if spec.skip and (spec.stride != 1 or self.in_channels != self.out_channels):
            raise SupernetError(f"block spec {spec.short()}: skip needs stride 1 and equal channels")

    def kernel(self, k: int, mid: int) -> torch.Tensor:
        """Depthwise kernel of size `k` for the first `mid` channels: crop and transform step by step."""
        weight = self.dw.conv.weight[:mid]
        current = self.max_kernel
        for small in self.kernels[1:]:
            if current == k:
                break
            matrix = self.kernel_transforms[_transform_name(current, small)]
            weight = (center_crop(weight, small).reshape(mid, small * small) @ matrix).reshape(mid, 1, small, small)
            current = small
        return weight

    def active(self, spec: BlockSpec) -> ActiveWeights:
        """The sliced (and transformed) tensors of `spec`; BN buffers are views of the full ones."""
        mid = spec.mid_channels(self.in_channels)
        se = slice_se(self.se, mid, spec.se_channels(self.in_channels)) if spec.se else None
        return ActiveWeights(
            self.expand.conv.weight[:mid], _bn_slice(self.expand.bn, mid),
            self.kernel(spec.kernel, mid), _bn_slice(self.dw.bn, mid), se,
            self.project.conv.weight[:, :mid], _bn_slice(self.project.bn, self.out_channels))

    def _bn(self, x: torch.Tensor, bn: nn.BatchNorm2d, p: BNParams) -> torch.Tensor:
        if self.training and bn.track_running_stats:
            bn.num_batches_tracked.add_(1)
        return F.batch_norm(x, p.running_mean, p.running_var, p.weight, p.bias,
                            self.training or not bn.track_running_stats, bn.momentum, bn.eps)

    def forward(self, x: torch.Tensor, spec: BlockSpec) -> torch.Tensor:
        w = self.active(spec)
        act = _ACTS[self.act]
        mid = w.expand.shape[0]
        y = act(self._bn(F.conv2d(x, w.expand), self.expand.bn, w.expand_bn))
        dw = reachable_taps(w.dw, y.shape[-2], y.shape[-1])
        y = F.conv2d(y, dw, None, self.stride, (dw.shape[-2] // 2, dw.shape[-1] // 2), 1, mid)
        y = act(self._bn(y, self.dw.bn, w.dw_bn))
        if w.se is not None:
            rw, rb, ew, eb = w.se
            s = F.relu(F.conv2d(y.mean((2, 3), keepdim=True), rw, rb))
            y = y * F.hardsigmoid(F.conv2d(s, ew, eb))
        y = self._bn(F.conv2d(y, w.project), self.project.bn, w.project_bn)
        return x + y if spec.skip else y

    def channel_importance(self) -> torch.Tensor:
        """L1 norm of the projection weights reading each expanded channel (OFA's importance)."""
        return self.project.conv.weight.detach().abs().sum((0, 2, 3))

    @torch.no_grad()
    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> torch.Tensor:
        """Reorder the expanded channels by decreasing importance (and the squeeze-excite bottleneck
        channels by theirs), so that small expand ratios keep the most important ones. The full
        block computes the same function before and after; `optimizer` state (momentum, Adam
        moments) is permuted along. Returns the permutation of the expanded channels."""
        perm = torch.argsort(self.channel_importance(), descending=True, stable=True)
        targets = [(t, 0) for t in (self.expand.conv.weight, self.dw.conv.weight)]
        for bn in (self.expand.bn, self.dw.bn):
            targets += [(t, 0) for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var)]
        targets.append((self.project.conv.weight, 1))
        if self.se_ratio:
            targets += [(self.se.reduce.weight, 1), (self.se.expand.weight, 0), (self.se.expand.bias, 0)]
        _permute(targets, perm, optimizer)
        if self.se_ratio:
            se_perm = torch.argsort(self.se.expand.weight.abs().sum((0, 2, 3)), descending=True, stable=True)
            _permute([(self.se.reduce.weight, 0), (self.se.reduce.bias, 0), (self.se.expand.weight, 1)],
                     se_perm, optimizer)
        return perm

    def static_state(self, spec: BlockSpec) -> dict[str, torch.Tensor]:
        """A state dict for `nas._model.Block(spec, in_channels)` holding this block's active weights."""
        w = self.active(spec)
        state: dict[str, torch.Tensor] = {}
        for name, conv, bn_params, bn in (("expand", w.expand, w.expand_bn, self.expand.bn),
                                          ("dw", w.dw, w.dw_bn, self.dw.bn),
                                          ("project", w.project, w.project_bn, self.project.bn)):
            state[f"{name}.conv.weight"] = conv
            for field, value in zip(BNParams._fields, bn_params):
                state[f"{name}.bn.{field}"] = value
            state[f"{name}.bn.num_batches_tracked"] = bn.num_batches_tracked
        if w.se is not None:
            for field, value in zip(SE_NAMES, w.se):
                state[f"se.{field}"] = value
        return {k: v.detach().clone() for k, v in state.items()}


def _permute(targets: list[tuple[torch.Tensor, int]], perm: torch.Tensor,
             optimizer: torch.optim.Optimizer | None) -> None:
    for tensor, dim in targets:
        tensors = [tensor]
        if optimizer is not None and tensor in optimizer.state:
            tensors += [v for v in optimizer.state[tensor].values()
                        if isinstance(v, torch.Tensor) and v.shape == tensor.shape]
        for t in tensors:
            t.copy_(t.index_select(dim, perm))


__all__ = ["SE_NAMES", "ActiveWeights", "BNParams", "DynamicMBBlock", "SupernetError", "center_crop", "reachable_taps",
           "slice_se"]
