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
from nas._model import SqueezeExcite, make_act
from nas.supernet import SE_NAMES, center_crop, slice_se


def family(spec: BlockSpec) -> tuple[str, int, int, str | None]:
    """Candidates with the same family share weights: op, stride, output channels, activation."""
    return spec.op, spec.stride, spec.out_channels, spec.act


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
    residual is added by the mixed layer). ``bn`` holds one batch norm per convolution, named like
    the `Block` layer it follows (``conv``, or ``expand`` / ``dw`` / ``project``)."""

    def __init__(self, spec: BlockSpec, in_channels: int) -> None:
        super().__init__()
        if spec.skip:
            raise ValueError("SharedCandidate takes the spec without its residual (skip=False)")
        self.spec = spec
        self.in_channels = in_channels
        self.mid = spec.mid_channels(in_channels)
        self.se_channels = spec.se_channels(in_channels)
        widths = {"conv": spec.out_channels, "expand": self.mid, "dw": self.mid, "project": spec.out_channels}
        layers = ["conv"] if spec.op == "conv" else (["expand"] if spec.op == "mb" else []) + ["dw", "project"]
        self.bn = nn.ModuleDict({name: nn.BatchNorm2d(widths[name]) for name in layers})
        self.act = make_act(spec.act)

    def weights(self, shared: SharedOp) -> dict[str, torch.Tensor]:
        """This candidate's slices of `shared`: the convolution weight of each layer in ``bn`` by its
        name, and the squeeze-excite tensors by their `Block` state-dict names (``se.reduce.weight``, ...)."""
        mid, k = self.mid, self.spec.kernel
        w: dict[str, torch.Tensor] = {}
        if self.spec.op == "conv":
            w["conv"] = center_crop(shared.conv.weight, k)
        else:
            if self.spec.op == "mb":
                w["expand"] = shared.expand.weight[:mid]
            w["dw"] = center_crop(shared.dw.weight[:mid], k)
            w["project"] = shared.project.weight[:, :mid]
        if self.se_channels:
            w.update(zip((f"se.{name}" for name in SE_NAMES), slice_se(shared.se, mid, self.se_channels)))
        return w

    def forward(self, x: torch.Tensor, shared: SharedOp) -> torch.Tensor:
        spec, w, bn, act = self.spec, self.weights(shared), self.bn, self.act
        pad = spec.kernel // 2
        if spec.op == "conv":
            y = act(bn["conv"](F.conv2d(x, w["conv"], None, spec.stride, pad)))
        else:
            if spec.op == "mb":
                x = act(bn["expand"](F.conv2d(x, w["expand"])))
            y = act(bn["dw"](F.conv2d(x, w["dw"], None, spec.stride, pad, 1, self.mid)))
        if self.se_channels:
            s = F.relu(F.conv2d(y.mean((2, 3), keepdim=True), w["se.reduce.weight"], w["se.reduce.bias"]))
            y = y * F.hardsigmoid(F.conv2d(s, w["se.expand.weight"], w["se.expand.bias"]))
        if spec.op != "conv":
            y = bn["project"](F.conv2d(y, w["project"]))
        return y

    def static_state(self, shared: SharedOp) -> dict[str, torch.Tensor]:
        """A state dict for `nas._model.Block(spec, in_channels)` holding this candidate's weights."""
        state: dict[str, torch.Tensor] = {}
        for name, weight in self.weights(shared).items():
            if name in self.bn:
                state[f"{name}.conv.weight"] = weight
                state.update({f"{name}.bn.{key}": value for key, value in self.bn[name].state_dict().items()})
            else:
                state[name] = weight
        return {key: value.detach().clone() for key, value in state.items()}


__all__ = ["SharedCandidate", "SharedOp", "family"]
