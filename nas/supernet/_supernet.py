"""`Supernet(space)`: every arch of an elastic MBConv space runs on one set of shared weights.

Supported spaces choose, per layer, the kernel and expand ratio of MBConv blocks and, per stage,
the depth (the first d layers run); stages without choices (like ofa_mbv3's first block), the stem
and the head are the static modules of `nas._model`. Other choices (op, width, se, skip, as in the
mnasnet space) are rejected when the supernet is built.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import torch
from torch import nn

from nas._arch import Arch, ArchError
from nas._model import Block, ConvBNAct, Head
from nas._space import SearchSpace, parse_op
from nas.supernet._ops import DynamicMBBlock, SupernetError

ELASTIC = ("kernel", "expand", "depth")
"""Stage choices a supernet can share weights over."""
_VALIDATED_CACHE_SIZE = 4096


def extreme_arch(space: SearchSpace, which: Literal["max", "min"]) -> Arch:
    """The arch taking the largest (or smallest) option of every choice, resolution included."""
    pick = max if which == "max" else min
    return space.decode({name: pick(options) for name, options in space.dims.items()})


def largest_arch(space: SearchSpace) -> Arch:
    """Largest kernel, expand ratio, depth and resolution everywhere."""
    return extreme_arch(space, "max")


def smallest_arch(space: SearchSpace) -> Arch:
    """Smallest kernel, expand ratio, depth and resolution everywhere."""
    return extreme_arch(space, "min")


def check_space(space: SearchSpace) -> None:
    """Raise `SupernetError` unless every choice of `space` is an elastic kernel, expand or depth
    of MBConv blocks."""
    for i, st in enumerate(space.stages):
        extra = sorted(set(st.choices) - set(ELASTIC))
        if extra:
            raise SupernetError(
                f"space {space.name!r} stage {i} chooses {extra}: a supernet shares weights only over "
                f"per-layer kernel/expand and per-stage depth choices of MBConv stages (like ofa_mbv3)")
        if st.choices and parse_op(st.fixed["op"])[0] != "mb":
            raise SupernetError(f"space {space.name!r} stage {i}: elastic choices need op 'mb', "
                                f"got {st.fixed['op']!r}")


class Supernet(nn.Module):
    """Shared weights of every arch of `space`; `forward(x, arch)` runs one of them.

    Children: ``stem`` (ConvBNAct), ``stages`` (ModuleList per stage: `DynamicMBBlock` layers of
    elastic stages, static `Block` layers of fixed ones, at the maximal depth), ``head`` (Head).
    """

    def __init__(self, space: SearchSpace, dropout: float = 0.0) -> None:
        super().__init__()
        check_space(space)
        self.space = space
        self.dropout = float(dropout)
        biggest = largest_arch(space)
        self.stem = ConvBNAct(space.in_channels, space.stem.out_channels, space.stem.kernel,
                              space.stem.stride, act=space.stem.act)
        stages = []
        channels = space.stem.out_channels
        for st, specs in zip(space.stages, biggest.stages):
            layers: list[nn.Module] = []
            for spec in specs:
                if st.choices:
                    layers.append(DynamicMBBlock(channels, spec.out_channels, spec.stride, spec.act, spec.se,
                                                 tuple(st.options("kernel")), tuple(st.options("expand"))))
                else:
                    layers.append(Block(spec, channels))
                channels = spec.out_channels
            stages.append(nn.ModuleList(layers))
        self.stages = nn.ModuleList(stages)
        self.head = Head(space.head, channels, space.num_classes, dropout)
        self._validated: OrderedDict[Arch, None] = OrderedDict()

    def validate(self, arch: Arch) -> None:
        """Raise `SupernetError` naming the choice if `arch` is not a point of the space."""
        if arch in self._validated:
            self._validated.move_to_end(arch)
            return
        try:
            self.space.validate(arch)
        except ArchError as err:
            raise SupernetError(f"arch is not in the supernet's space: {err}") from None
        for stage, specs in zip(self.stages, arch.stages):
            for layer, spec in zip(stage, specs):
                if isinstance(layer, DynamicMBBlock):
                    layer.check(spec)
        self._validated[arch] = None
        if len(self._validated) > _VALIDATED_CACHE_SIZE:
            self._validated.popitem(last=False)

    def reorganize_channels(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Sort every elastic block's expanded channels by importance (before shrinking expand);
        the largest subnet is unchanged, smaller expand ratios keep the most important channels."""
        for stage in self.stages:
            for layer in stage:
                if isinstance(layer, DynamicMBBlock):
                    layer.sort_channels(optimizer)

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        self.validate(arch)
        if tuple(x.shape[-2:]) != (arch.resolution, arch.resolution):
            raise SupernetError(f"input is {tuple(x.shape[-2:])} but the arch runs at "
                                f"{arch.resolution}x{arch.resolution}; resize the batch first")
        x = self.stem(x)
        for stage, specs in zip(self.stages, arch.stages):
            for layer, spec in zip(stage, specs):
                x = layer(x, spec) if isinstance(layer, DynamicMBBlock) else layer(x)
        return self.head(x)


__all__ = ["ELASTIC", "Supernet", "check_space", "extreme_arch", "largest_arch", "smallest_arch"]
