"""Fixtures shared across the test packages."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """One torch intra-op thread for the test: two cores are shared by several processes here, and
    torch's default of one thread per core makes small convolutions spin-wait and run ~50x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
