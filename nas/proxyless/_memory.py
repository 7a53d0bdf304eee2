"""A deterministic memory measure: bytes of the tensors autograd saves for the backward pass."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch


def saved_activation_bytes(fn: Callable[[], Any], exclude: Iterable[torch.Tensor] = ()) -> int:
    """Run `fn` (a forward pass) and return the bytes of the distinct storages autograd saved for
    backward, leaving out those of `exclude` (pass the model's parameters to count activations only).

    This is what a training step must keep alive between forward and backward; unlike process RSS
    or allocator peaks it does not depend on the allocator, threads or other processes.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(seen.values())
