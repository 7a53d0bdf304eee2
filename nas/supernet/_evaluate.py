"""Accuracy of archs with shared weights: extract, recalibrate batch norm, measure; cached by arch."""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from nas._arch import Arch
from nas.supernet._bn import Batch, recalibrated, resize
from nas.supernet._quant import fake_quantized


@torch.no_grad()
def accuracy(net: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
             resolution: int | None = None) -> float:
    """Top-1 accuracy (0..1) of `net` in eval mode over ``(images, labels)`` batches."""
    was_training = net.training
    net.eval()
    correct = total = 0
    for x, y in batches:
        logits = net(resize(x, resolution) if resolution else x)
        correct += int((logits.argmax(1) == y).sum())
        total += int(y.numel())
    net.train(was_training)
    if total == 0:
        raise ValueError("accuracy needs at least one labelled batch")
    return correct / total


class SharedWeightEvaluator:
    """Validation accuracy of any arch of a supernet, with BN recalibrated per arch, cached by arch.

    `calibration` is a fixed list of training batches (the same for every arch, so results are
    comparable and reproducible); `validation` is re-iterated for each new arch. With ``int8`` the
    recalibrated subnet is evaluated under simulated int8 (`fake_quantized`, activation ranges from
    the same calibration batches): the accuracy its int8 export would have.
    """

    def __init__(self, supernet: nn.Module, calibration: Sequence[Batch],
                 validation: Iterable[tuple[torch.Tensor, torch.Tensor]], int8: bool = False) -> None:
        if not calibration:
            raise ValueError("SharedWeightEvaluator needs at least one calibration batch")
        self.supernet = supernet
        self.calibration = list(calibration)
        self.validation = validation
        self.int8 = int8
        self._cache: dict[Arch, float] = {}

    def __call__(self, arch: Arch) -> float:
        """Validation accuracy (0..1) of `arch` with shared weights."""
        if arch not in self._cache:
            net = recalibrated(self.supernet, arch, self.calibration)
            if self.int8:
                net = fake_quantized(net, self.calibration, arch.resolution)
            self._cache[arch] = accuracy(net, self.validation, arch.resolution)
        return self._cache[arch]

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def images(self) -> int:
        """The number of validation images each accuracy is measured on."""
        if not hasattr(self, "_images"):
            self._images = sum(int(y.numel()) for _, y in self.validation)
        return self._images

    def clear(self) -> None:
        """Forget cached results (call after the supernet's weights change)."""
        self._cache.clear()


__all__ = ["SharedWeightEvaluator", "accuracy"]
