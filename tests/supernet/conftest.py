"""Shared fixtures of the supernet tests: a tiny ofa_mbv3 space and one thread per process.

Two cores are shared by several processes here; torch's default of one thread per core makes
small convolutions 50x slower under contention, so these tests run single-threaded.
"""

from __future__ import annotations

import pytest
import torch

import nas


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every supernet test runs single-threaded (`one_thread` in tests/conftest.py)."""


@pytest.fixture(scope="session")
def tiny_space() -> nas.SearchSpace:
    return nas.load_space("ofa_mbv3", resolutions=[32], num_classes=10, in_channels=1, width_mult=0.5)


def randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BN non-trivial statistics and affine terms and perturb the kernel transforms,
    so equality tests cannot pass by identity matrices and unit statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "kernel_transforms" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
    return module
