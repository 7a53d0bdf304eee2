"""Simulated int8 (fake quantization) of an extracted subnet, as `nas.export.quantize_onnx` quantizes it.

What ONNX Runtime's static QDQ quantization with `nas.export.INT8` does to a network, in float32
torch: batch norm folded into the convolutions; every conv / linear weight rounded to int8 per
output channel, symmetric (scale = max|w| / 127); and every tensor the QDQ graph quantizes rounded to
uint8 with an asymmetric MinMax range observed on calibration batches (the range always includes 0):
the input of every conv and linear, every conv output not fused with a ReLU, every activation output
(hard-swish as ONNX Runtime decomposes it, HardSigmoid(x) · x, both quantized), the squeeze-excite
gate and product, every residual sum and the logits. Biases stay float (ORT stores them as int32 at
scale s_in · s_w, far finer). Ranks archs by their int8 accuracy with shared weights, without
exporting each one (`experiments/benchmarks/int8_rank.py` measures how well).
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from nas._model import Block, ConvBNAct, Head, Network
from nas.export import fold_bn
from nas.supernet._bn import Batch, forward_batches

WEIGHT_QMAX = 127
"""Symmetric int8 weights: [-127, 127] (ONNX Runtime's symmetric QInt8 range)."""
ACTIVATION_QMAX = 255
"""Asymmetric uint8 activations: [0, 255] (QUInt8)."""
_RELU = (nn.ReLU, nn.ReLU6)  # fused into the conv before them: the conv's own output is not quantized


class QuantPoint(nn.Module):
    """One tensor of the int8 graph: records its range while observing, then rounds it to uint8."""

    def __init__(self) -> None:
        super().__init__()
        self.low, self.high = float("inf"), float("-inf")
        self.scale: float | None = None
        self.zero = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is None:
            self.low, self.high = min(self.low, float(x.min())), max(self.high, float(x.max()))
            return x
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero, 0, ACTIVATION_QMAX)

    def freeze(self) -> None:
        low, high = min(self.low, 0.0), max(self.high, 0.0)
        self.scale = max((high - low) / ACTIVATION_QMAX, 1e-12)
        self.zero = int(round(-low / self.scale))


class SharedPoint(nn.Module):
    """A tensor quantized with another's parameters: ONNX Runtime gives a global average pool
    (ReduceMean) its input's scale and zero point."""

    def __init__(self, source: QuantPoint) -> None:
        super().__init__()
        self.source = [source]  # a list: not a submodule, so the point is counted (and frozen) once

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.source[0]
        if p.scale is None:
            return x
        return torch.fake_quantize_per_tensor_affine(x, p.scale, p.zero, 0, ACTIVATION_QMAX)


class _Hardswish(nn.Module):
    """Hard-swish as ONNX Runtime's int8 graph computes it: HardSigmoid(x) quantized, times x."""

    def __init__(self) -> None:
        super().__init__()
        self.sigmoid = QuantPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(F.hardsigmoid(x))


def _after(module: nn.Module) -> nn.Sequential:
    return nn.Sequential(module, QuantPoint())


def _layer(layer: nn.Module, quantize_output: bool, input_like: QuantPoint | None = None) -> nn.Sequential:
    """A conv / linear with its input (and output) quantized; `_round_weights` rounds its weight.
    input_like: the input is a pooled tensor quantized with that point's parameters."""
    first = QuantPoint() if input_like is None else SharedPoint(input_like)
    return nn.Sequential(first, layer, *([QuantPoint()] if quantize_output else []))


def _output_point(m: nn.Module) -> QuantPoint:
    """The QuantPoint a rewritten ConvBNAct's output passes last."""
    return [p for p in m.modules() if isinstance(p, QuantPoint)][-1]


@torch.no_grad()
def _round_weights(net: nn.Module) -> None:
    """Every conv / linear weight to int8 per output channel, symmetric (after calibration: ONNX
    Runtime takes the activation ranges from the float32 model)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight
            scale = (w.abs().flatten(1).amax(1).clamp_min(1e-12) / WEIGHT_QMAX).float()
            zero = torch.zeros(w.shape[0], dtype=torch.int32)
            w.copy_(torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -WEIGHT_QMAX, WEIGHT_QMAX))


def _activation(act: nn.Module) -> nn.Module:
    if isinstance(act, nn.Identity):
        return act
    return _after(_Hardswish() if isinstance(act, nn.Hardswish) else act)


def _rewrite(net: Network) -> None:
    for m in list(net.modules()):
        if isinstance(m, ConvBNAct):
            m.conv = _layer(m.conv, not isinstance(m.act, _RELU))
            m.act = _activation(m.act)
    for m in list(net.modules()):
        if isinstance(m, Block) and m.spec.se:
            se, pooled = m.se, _output_point(m.dw)  # the SE pools the depthwise output
            se.reduce, se.act = _layer(se.reduce, False, pooled), _after(se.act)
            se.expand, se.gate = _layer(se.expand, True), _after(se.gate)
            m.se = _after(se)  # the gated product
        elif isinstance(m, Head):
            pooled = _output_point(m.conv)
            if m.spec.feature_channels:
                m.feature = _layer(m.feature, not isinstance(m.feature_act, _RELU), pooled)
                m.feature_act = _activation(m.feature_act)
                m.classifier = _layer(m.classifier, True)
            else:
                m.classifier = _layer(m.classifier, True, pooled)
    net.blocks = nn.Sequential(*(_after(b) if b.spec.skip else b for b in net.blocks))  # the residual sums


@torch.no_grad()
def fake_quantized(net: Network, batches: Iterable[Batch], resolution: int | None = None) -> Network:
    """A copy of `net` (a `nas.build_model` / `extract` network; eval mode, BN folded) that computes
    as its int8 ONNX export would. The input is left untouched.

    batches: calibration inputs (tensors, or tuples whose first item is the images), resized to
    `resolution` when given; the ranges they produce fix every activation scale.
    """
    if not isinstance(net, Network):
        raise TypeError(f"fake_quantized takes a nas Network (build_model / extract), not {type(net).__name__}")
    folded = fold_bn(net)
    _rewrite(folded)
    if forward_batches(folded, batches, resolution) == 0:
        raise ValueError("fake_quantized needs at least one calibration batch")
    for p in (m for m in folded.modules() if isinstance(m, QuantPoint)):
        p.freeze()
    _round_weights(folded)
    return folded


__all__ = ["QuantPoint", "SharedPoint", "fake_quantized"]
