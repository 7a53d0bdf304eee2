"""`extract(supernet, arch)`: the static network of one arch, with the supernet's weights copied."""

from __future__ import annotations

import torch

from nas._arch import Arch
from nas._model import Network, build_model
from nas.supernet._ops import DynamicMBBlock
from nas.supernet._supernet import Supernet


@torch.no_grad()
def extract(supernet: Supernet, arch: Arch) -> Network:
    """A new `nas.build_model(arch, ...)` network whose outputs equal ``supernet(x, arch)``.

    Kernels are transformed, channels and batch-norm statistics sliced, then copied; the result
    shares no tensor with the supernet and is in the supernet's train/eval mode.
    """
    supernet.validate(arch)
    space = supernet.space
    net = build_model(arch, space.num_classes, space.in_channels, supernet.dropout)
    reference = next(supernet.parameters())
    net.to(device=reference.device, dtype=reference.dtype)
    net.stem.load_state_dict(supernet.stem.state_dict())
    net.head.load_state_dict(supernet.head.state_dict())
    blocks = iter(net.blocks)
    for stage, specs in zip(supernet.stages, arch.stages):
        for layer, spec in zip(stage, specs):
            state = layer.static_state(spec) if isinstance(layer, DynamicMBBlock) else layer.state_dict()
            next(blocks).load_state_dict(state)
    return net.train(supernet.training)


__all__ = ["extract"]
