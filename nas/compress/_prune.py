"""Channel pruning of a static `nas.Network`: which widths can shrink, which channels stay, and the copy.

Prunable widths (`prunable`): every MBConv's expanded channels (``block<i>``, the flat block index)
and the head's final conv (``head``). A block's output width is left alone: in these spaces most
blocks add it to a residual, so it is shared by a whole stage.

Criterion (`importance`): the L1 norm of the weights that *read* each channel, i.e. the projection
conv's columns for an expanded channel, the feature conv's or classifier's for a head channel. Each
channel is followed by batch norm, so the L1 norm of the filter that writes it (NetAdapt's choice)
says little about its effect; the reading weights do (once-for-all sorts channels the same way).
The squeeze-excite bottleneck of a pruned block shrinks with it (its width is a ratio of the
expanded one) and keeps its channels by the same rule. Kept channels stay in their order.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping

import torch

from nas._arch import Arch, BlockSpec, make_divisible
from nas._model import Network, build_model

_BN = ("weight", "bias", "running_mean", "running_var")


def prunable(arch: Arch) -> dict[str, int]:
    """Every width `prune` can shrink, by name (``block<i>``, ``head``), with its current channels."""
    out, channels = {}, arch.stem.out_channels
    for i, spec in enumerate(arch.blocks):
        if spec.op == "mb":
            out[f"block{i}"] = spec.mid_channels(channels)
        channels = spec.out_channels
    out["head"] = arch.head.channels
    return out


def with_widths(arch: Arch, widths: Mapping[str, int]) -> Arch:
    """`arch` with the named widths (`prunable` names) set; unnamed widths are kept."""
    unknown = sorted(set(widths) - set(prunable(arch)))
    if unknown:
        raise ValueError(f"with_widths: {unknown} are not prunable widths of this arch ({sorted(prunable(arch))})")
    if any(int(w) < 1 for w in widths.values()):
        raise ValueError(f"with_widths: every width must be >= 1, got {dict(widths)}")
    stages, channels, i = [], arch.stem.out_channels, 0
    for stage in arch.stages:
        blocks: list[BlockSpec] = []
        for spec in stage:
            name = f"block{i}"
            blocks.append(spec.with_mid(int(widths[name]), channels) if name in widths else spec)
            channels, i = spec.out_channels, i + 1
        stages.append(tuple(blocks))
    head = replace(arch.head, channels=int(widths["head"])) if "head" in widths else arch.head
    return Arch(arch.resolution, arch.stem, tuple(stages), head)


def uniform(arch: Arch, factor: float, divisor: int = 8) -> Arch:
    """Every prunable width times `factor`, rounded to a multiple of `divisor` (at least `divisor`
    and never wider than now): uniform width scaling, the baseline NetAdapt is compared with."""
    return with_widths(arch, {n: min(w, max(divisor, make_divisible(w * factor, divisor)))
                              for n, w in prunable(arch).items()})


def _reading_weights(net: Network, name: str) -> torch.Tensor:
    if name == "head":
        reader = net.head.feature.weight if net.arch.head.feature_channels else net.head.classifier.weight
        return reader.reshape(reader.shape[0], reader.shape[1], -1).transpose(0, 1)
    return net.blocks[_index(name)].project.conv.weight.transpose(0, 1)


def importance(net: Network, name: str) -> torch.Tensor:
    """Per channel of width `name`: the L1 norm of the weights that read it."""
    with torch.no_grad():
        return _reading_weights(net, name).abs().flatten(1).sum(1)


def _index(name: str) -> int:
    if not name.startswith("block") or not name[5:].isdigit():
        raise ValueError(f"{name!r} is not a prunable width name (block<i> or head)")
    return int(name[5:])


def _top(scores: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the `n` largest scores, in their original order (ties: the lower index)."""
    order = torch.argsort(scores, descending=True, stable=True)[:n]
    return torch.sort(order).values


@torch.no_grad()
def prune(net: Network, name: str, width: int) -> Network:
    """A new network with width `name` cut to `width` channels, the `importance`-ranked ones kept,
    every other weight and batch-norm statistic copied. It equals ``nas.build_model(arch)`` of its
    arch with those weights, and is in `net`'s train/eval mode."""
    current = prunable(net.arch)
    if name not in current:
        raise ValueError(f"prune: {name!r} is not a prunable width of this arch ({sorted(current)})")
    if not 1 <= width <= current[name]:
        raise ValueError(f"prune: width {width} of {name} must be in [1, {current[name]}]")
    keep = _top(importance(net, name), width)
    arch = with_widths(net.arch, {name: width})
    cuts: dict[str, dict[int, torch.Tensor]] = {}
    if name == "head":
        cuts["head.conv.conv.weight"] = {0: keep}
        cuts.update({f"head.conv.bn.{p}": {0: keep} for p in _BN})
        cuts["head.feature.weight" if arch.head.feature_channels else "head.classifier.weight"] = {1: keep}
    else:
        i = _index(name)
        p, block = f"blocks.{i}.", net.blocks[i]
        for conv in ("expand", "dw"):
            cuts[f"{p}{conv}.conv.weight"] = {0: keep}
            cuts.update({f"{p}{conv}.bn.{b}": {0: keep} for b in _BN})
        cuts[f"{p}project.conv.weight"] = {1: keep}
        if block.spec.se:
            squeeze = arch.blocks[i].se_channels(block.in_channels)
            se_keep = _top(block.se.expand.weight[keep].abs().flatten(1).sum(0), squeeze)
            cuts[f"{p}se.reduce.weight"] = {0: se_keep, 1: keep}
            cuts[f"{p}se.reduce.bias"] = {0: se_keep}
            cuts[f"{p}se.expand.weight"] = {0: keep, 1: se_keep}
            cuts[f"{p}se.expand.bias"] = {0: keep}
    return copy_cut(net, arch, cuts)


def copy_cut(net: Network, arch: Arch, cuts: Mapping[str, Mapping[int, torch.Tensor]]) -> Network:
    """``build_model(arch)`` holding `net`'s tensors, each indexed along the dims `cuts` names."""
    new = build_model(arch, net.num_classes, net.in_channels, net.head.dropout.p)
    old = net.state_dict()
    state = {}
    for key, target in new.state_dict().items():
        value = old[key]
        for dim, index in cuts.get(key, {}).items():
            value = value.index_select(dim, index.to(value.device))
        if value.shape != target.shape:
            raise AssertionError(f"prune: {key} is {tuple(value.shape)} after the cut, the new model has "
                                 f"{tuple(target.shape)}")
        state[key] = value.clone()
    new.load_state_dict(state)
    reference = next(net.parameters())
    new.to(device=reference.device, dtype=reference.dtype)
    if reference.dim() == 4 and reference.is_contiguous(memory_format=torch.channels_last):
        new.to(memory_format=torch.channels_last)
    return new.train(net.training)


def copy_weights(net: Network, arch: Arch) -> Network:
    """`net` cut to the (narrower) widths of `arch` in one go, channels chosen by `importance`
    (used for the uniform-width baseline)."""
    for name, width in prunable(arch).items():
        if prunable(net.arch)[name] != width:
            net = prune(net, name, width)
    return net


__all__ = ["copy_cut", "copy_weights", "importance", "prunable", "prune", "uniform", "with_widths"]
