import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions: one intra-op thread avoids spin-wait thrash on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
