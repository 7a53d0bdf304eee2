"""One builder from `Arch` to a plain static PyTorch network, and counters over the specs."""

from __future__ import annotations

import torch
from torch import nn

from nas._arch import Arch, BlockKey, BlockSpec, HeadSpec, key_macs, key_params


def make_act(name: str | None) -> nn.Module:
    """The activation module for a spec's act name (identity for None)."""
    if name is None:
        return nn.Identity()
    return {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish}[name]()


class ConvBNAct(nn.Sequential):
    """k×k conv (no bias, 'same' padding), batch norm, optional activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1,
                 groups: int = 1, act: str | None = "relu") -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = make_act(act)


class SqueezeExcite(nn.Module):
    """Global pool, 1×1 reduce + ReLU, 1×1 expand + hard sigmoid, scale the input."""

    def __init__(self, channels: int, mid_channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, mid_channels, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(mid_channels, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class Block(nn.Module):
    """One `BlockSpec` layer: conv / depthwise-separable / MBConv, optional SE and residual."""

    def __init__(self, spec: BlockSpec, in_channels: int) -> None:
        super().__init__()
        self.spec = spec
        self.in_channels = in_channels
        mid, k, s = spec.mid_channels(in_channels), spec.kernel, spec.stride
        if spec.op == "conv":
            self.conv = ConvBNAct(in_channels, spec.out_channels, k, s, act=spec.act)
        else:
            if spec.op == "mb":
                self.expand = ConvBNAct(in_channels, mid, 1, act=spec.act)
            self.dw = ConvBNAct(mid, mid, k, s, groups=mid, act=spec.act)
        if spec.se:
            self.se = SqueezeExcite(mid, spec.se_channels(in_channels))
        if spec.op != "conv":
            self.project = ConvBNAct(mid, spec.out_channels, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.op == "conv":
            y = self.conv(x)
        else:
            y = self.dw(self.expand(x) if self.spec.op == "mb" else x)
        if self.spec.se:
            y = self.se(y)
        if self.spec.op != "conv":
            y = self.project(y)
        return x + y if self.spec.skip else y


class Head(nn.Module):
    """1×1 conv-BN-act, global average pool, optional 1×1 feature conv + act, dropout, classifier."""

    def __init__(self, spec: HeadSpec, in_channels: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.spec = spec
        self.conv = ConvBNAct(in_channels, spec.channels, 1, act=spec.act)
        width = spec.channels
        if spec.feature_channels:
            self.feature = nn.Conv2d(spec.channels, spec.feature_channels, 1, bias=False)
            self.feature_act = make_act(spec.act)
            width = spec.feature_channels
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x).mean((2, 3), keepdim=True)
        if self.spec.feature_channels:
            x = self.feature_act(self.feature(x))
        return self.classifier(self.dropout(torch.flatten(x, 1)))


class Network(nn.Module):
    """A static network built from an `Arch`: ``stem``, ``blocks`` (flat, in order), ``head``."""

    def __init__(self, arch: Arch, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        self.arch = arch
        self.num_classes = num_classes
        self.in_channels = in_channels
        keys = arch.block_keys(num_classes, in_channels)
        self.stem = build_block(keys[0])
        self.blocks = nn.Sequential(*(build_block(k) for k in keys[1:-1]))
        self.head = Head(arch.head, keys[-1].in_channels, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def build_model(arch: Arch, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.0) -> Network:
    """The plain static `Network` for `arch`."""
    return Network(arch, num_classes, in_channels, dropout)


def build_block(key: BlockKey) -> nn.Module:
    """A standalone module for one latency-table key (stem conv, block or head)."""
    if key.kind == "stem":
        return ConvBNAct(key.in_channels, key.out_channels, key.kernel, key.stride, act=key.act)
    if key.kind == "block":
        return Block(key.block_spec(), key.in_channels)
    if key.kind == "head":
        return Head(key.head_spec(), key.in_channels, key.num_classes)
    raise ValueError(f"unknown block key kind {key.kind!r}")


def count_params(arch: Arch, num_classes: int = 1000, in_channels: int = 3) -> int:
    """Trainable parameters of `build_model(arch, ...)`, computed from the specs alone."""
    return sum(key_params(k) for k in arch.block_keys(num_classes, in_channels))


def count_macs(arch: Arch, num_classes: int = 1000, in_channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass at `arch.resolution` (convs and linear layers)."""
    return sum(key_macs(k) for k in arch.block_keys(num_classes, in_channels))


def layer_table(arch: Arch, num_classes: int = 1000, in_channels: int = 3) -> list[dict[str, object]]:
    """One row per layer: name, input shape, output channels, params, MACs."""
    rows = []
    for i, key in enumerate(arch.block_keys(num_classes, in_channels)):
        name = key.kind if key.kind != "block" else f"block{i - 1}"
        rows.append({"layer": name, "spec": key.short(), "input": f"{key.in_channels}x{key.in_hw}x{key.in_hw}",
                     "output": f"{key.num_classes if key.kind == 'head' else key.out_channels}x{key.out_hw}x{key.out_hw}",
                     "params": key_params(key), "macs": key_macs(key)})
    return rows


__all__ = ["Block", "ConvBNAct", "Head", "Network", "SqueezeExcite", "build_block", "build_model",
           "count_macs", "count_params", "layer_table", "make_act"]
