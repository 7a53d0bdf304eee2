import pytest

import nas
from nas.latency import LatencyTable


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny convolutions: every proxyless test runs single-threaded (`one_thread` in tests/conftest.py)."""


def work_table(space: nas.SearchSpace) -> LatencyTable:
    """A complete in-memory table whose latency grows with work (kernel², expand, channels, pixels)."""
    entries = {}
    for k in space.all_block_keys():
        work = k.in_hw ** 2 * k.in_channels * max(k.expand, 1) * k.kernel ** 2 * (1.25 if k.se else 1.0)
        entries[k] = {"latency_ms": 0.005 + work * 1e-7 + (0.002 if k.op == "conv" else 0.0)}
    return LatencyTable(entries, {"space": {"name": space.name}})


@pytest.fixture(scope="session")
def synthetic_table():
    """`work_table(space)`: a synthetic latency table for any space."""
    return work_table
