"""Shared fixtures: tiny spaces (a handful of layer keys at 32×32) and a fast timing protocol."""

from __future__ import annotations

from pathlib import Path

import pytest

import nas
from nas.latency import Protocol

FAST = Protocol(warmup=2, repeats=3, runs=3, min_repeat_ms=0.2, max_runs=20, passes=3, remeasure_passes=1)


def make_tiny_space(name: str = "tiny"):
    """A small space at 32×32, 10 classes, 1 channel: few keys, so measuring takes seconds.

    "tiny": two stages, 6 keys (tiny_space.yaml); "ofa_mbv3" / "mnasnet": restricted built-ins."""
    if name == "tiny":
        return nas.load_space(Path(__file__).with_name("tiny_space.yaml"))
    space = nas.load_space(name, resolutions=[32], num_classes=10, in_channels=1)
    if name == "ofa_mbv3":
        return space.restrict(kernel=[3], expand=[3], depth=[2, 3])  # 13 keys, 32 archs
    return space.restrict(op=["ds", "mb3"], kernel=[3], se=[0.0], skip=[True],
                          width=[16, 24, 32, 64, 96, 160, 320])  # 36 keys


@pytest.fixture(scope="session")
def fast_protocol() -> Protocol:
    return FAST


@pytest.fixture(scope="session")
def tiny_space():
    """The factory `make_tiny_space(name)`."""
    return make_tiny_space
