"""`extract(supernet, arch)`: the static network of one arch, with the supernet's weights copied."""

from __future__ import annotations

import os

import torch

from nas._arch import Arch
from nas._atomic import atomic_path
from nas._model import Network, build_model
from nas.supernet._ops import DynamicMBBlock, SupernetError
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


_FORMAT = "hwnas-extracted-v1"


def save_extracted(net: Network, path: str | os.PathLike[str]) -> None:
    """Write `net` as its arch (plain dict) plus state dict, atomically; `load_extracted` or
    ``nas.build_model(Arch.from_dict(d["arch"]), ...)`` + ``load_state_dict`` read it back."""
    payload = {"format": _FORMAT, "arch": net.arch.to_dict(), "num_classes": net.num_classes,
               "in_channels": net.in_channels, "state_dict": net.state_dict()}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_extracted(path: str | os.PathLike[str]) -> Network:
    """The network `save_extracted` wrote (eval mode), read with ``weights_only=True``."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise SupernetError(f"extracted model {str(path)!r} is unreadable ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise SupernetError(f"{str(path)!r} is not an extracted hwnas model ({_FORMAT})")
    net = build_model(Arch.from_dict(payload["arch"]), payload["num_classes"], payload["in_channels"])
    net.load_state_dict(payload["state_dict"])
    return net.eval()


__all__ = ["extract", "load_extracted", "save_extracted"]
