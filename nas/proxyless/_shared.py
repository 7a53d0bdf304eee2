"""Candidates that share one set of convolution weights per op family (single-path superkernels).

With a separate module per candidate, a MnasNet layer holds 16 blocks (4 ops x 2 kernels x 2 SE) and a
sampled path meets a different network at every step; single-path training then learns nothing in a
few hundred steps (see the benchmarks README, "Why the MnasNet weights do not train"). Here the
candidates of one layer that run the same op share its convolutions, as in Single-Path NAS
(Stamoulis et al., 2019) and the once-for-all supernet:

- a smaller kernel is the centre crop of the largest one;
- a smaller expand ratio uses the first ``in_channels * expand`` expanded channels;
- squeeze-excite is an add-on: a candidate with SE uses the first channels of the family's SE convs.

Batch norms stay private to each candidate (cheap, and a k3 and a k5 path have different activation
statistics), so a candidate's module holds its BNs and reads the shared convolutions from its
`SharedOp`. A conv, a depthwise-separable and an MBConv candidate share nothing: three families at most.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nas._arch import BlockSpec
from nas._model import SqueezeExcite

_ACTS = {"relu": F.relu, "relu6": F.relu6, "hswish": F.hardswish, None: lambda x: x}


def family(spec: BlockSpec) -> tuple[str, int, int, str | None]:
    """Candidates with the same family share weights: op, stride, output channels, activation."""
    return spec.op, spec.stride, spec.out_channels, spec.act


def _crop(weight: torch.Tensor, k: int) -> torch.Tensor:
    start = (weight.shape[-1] - k) // 2
    return weight[..., start:start + k, start:start + k]


class SharedOp(nn.Module):
    """The largest weights of one op family at one layer position (``conv``, ``ds`` or ``mb``)."""

    def __init__(self, specs: Sequence[BlockSpec], in_channels: int) -> None:
        super().__init__()
        families = {family(s) for s in specs}
        if len(families) != 1:
            raise ValueError(f"SharedOp needs specs of one family (op, stride, channels, act), got {sorted(families)}")
        first = specs[0]
        self.op, self.stride, self.out_channels = first.op, first.stride, first.out_channels
        self.in_channels = in_channels
        k = max(s.kernel for s in specs)
        mid = max(s.mid_channels(in_channels) for s in specs)
        se = max(s.se_channels(in_channels) for s in specs)
        if self.op == "conv":
            self.conv = nn.Conv2d(in_channels, self.out_channels, k, bias=False)
        else:
            if self.op == "mb":
                self.expand = nn.Conv2d(in_channels, mid, 1, bias=False)
            self.dw = nn.Conv2d(mid, mid, k, groups=mid, bias=False)
            self.project = nn.Conv2d(mid, self.out_channels, 1, bias=False)
        if se:
            self.se = SqueezeExcite(mid, se)


class SharedCandidate(nn.Module):
    """One candidate block: private batch norms, convolutions sliced from a `SharedOp` per call.

    Computes what `nas._model.Block(spec, in_channels)` computes with the sliced weights (the identity
    residual is added by the mixed layer)."""

    def __init__(self, spec: BlockSpec, in_channels: int) -> None:
        super().__init__()
        if spec.skip:
            raise ValueError("SharedCandidate takes the spec without its residual (skip=False)")
        self.spec = spec
        self.in_channels = in_channels
        self.mid = spec.mid_channels(in_channels)
        self.se_channels = spec.se_channels(in_channels)
        if spec.op == "conv":
            self.bn = nn.BatchNorm2d(spec.out_channels)
        else:
            if spec.op == "mb":
                self.expand_bn = nn.BatchNorm2d(self.mid)
            self.dw_bn = nn.BatchNorm2d(self.mid)
            self.project_bn = nn.BatchNorm2d(spec.out_channels)

    def forward(self, x: torch.Tensor, shared: SharedOp) -> torch.Tensor:
        spec, mid, act = self.spec, self.mid, _ACTS[self.spec.act]
        k, pad = spec.kernel, spec.kernel // 2
        if spec.op == "conv":
            y = act(self.bn(F.conv2d(x, _crop(shared.conv.weight, k), None, spec.stride, pad)))
        else:
            if spec.op == "mb":
                x = act(self.expand_bn(F.conv2d(x, shared.expand.weight[:mid])))
            y = act(self.dw_bn(F.conv2d(x, _crop(shared.dw.weight[:mid], k), None, spec.stride, pad, 1, mid)))
        if self.se_channels:
            se, r = shared.se, self.se_channels
            s = F.relu(F.conv2d(y.mean((2, 3), keepdim=True), se.reduce.weight[:r, :mid], se.reduce.bias[:r]))
            y = y * F.hardsigmoid(F.conv2d(s, se.expand.weight[:mid, :r], se.expand.bias[:mid]))
        if spec.op != "conv":
            y = self.project_bn(F.conv2d(y, shared.project.weight[:, :mid]))
        return y

    def static_state(self, shared: SharedOp) -> dict[str, torch.Tensor]:
        """A state dict for `nas._model.Block(spec, in_channels)` holding this candidate's weights."""
        spec, mid, k = self.spec, self.mid, self.spec.kernel
        state: dict[str, torch.Tensor] = {}

        def put(name: str, weight: torch.Tensor, bn: nn.BatchNorm2d) -> None:
            state[f"{name}.conv.weight"] = weight
            state.update({f"{name}.bn.{key}": value for key, value in bn.state_dict().items()})

        if spec.op == "conv":
            put("conv", _crop(shared.conv.weight, k), self.bn)
        else:
            if spec.op == "mb":
                put("expand", shared.expand.weight[:mid], self.expand_bn)
            put("dw", _crop(shared.dw.weight[:mid], k), self.dw_bn)
            put("project", shared.project.weight[:, :mid], self.project_bn)
        if self.se_channels:
            se, r = shared.se, self.se_channels
            state.update({"se.reduce.weight": se.reduce.weight[:r, :mid], "se.reduce.bias": se.reduce.bias[:r],
                          "se.expand.weight": se.expand.weight[:mid, :r], "se.expand.bias": se.expand.bias[:mid]})
        return {key: value.detach().clone() for key, value in state.items()}


__all__ = ["SharedCandidate", "SharedOp", "family"]
