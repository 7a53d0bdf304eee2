"""`Supernet.forward(x, arch)` and `extract`: exact equality with the static network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nas
from nas._model import Block, Network
from nas.supernet import DynamicMBBlock, Supernet, SupernetError, extract, largest_arch, smallest_arch

from .conftest import randomize


@pytest.fixture(scope="module")
def supernet(tiny_space) -> Supernet:
    torch.manual_seed(0)
    return randomize(Supernet(tiny_space), seed=3).eval()


def _archs(space, n: int) -> list[nas.Arch]:
    rng = np.random.default_rng(7)
    return [largest_arch(space), smallest_arch(space)] + [space.sample(rng) for _ in range(n)]


def test_layout_mirrors_the_space(supernet, tiny_space):
    assert [len(s) for s in supernet.stages] == [st.max_depth for st in tiny_space.stages]
    assert isinstance(supernet.stages[0][0], Block)  # the fixed first block is static
    assert all(isinstance(layer, DynamicMBBlock) for stage in supernet.stages[1:] for layer in stage)
    assert largest_arch(tiny_space).depths == (1, 4, 4, 4, 4, 4)
    assert {b.kernel for b in smallest_arch(tiny_space).blocks[1:]} == {3}


@torch.no_grad()
def test_extracted_network_equals_supernet_in_eval_mode(supernet, tiny_space):
    x = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    for arch in _archs(tiny_space, 6):
        net = extract(supernet, arch)
        assert type(net) is Network and net.arch == arch and not net.training
        assert [type(b) for b in net.blocks] == [Block] * len(arch.blocks)
        reference = supernet(x, arch)
        assert (net(x) - reference).abs().max().item() <= 1e-5
        # and it is the network build_model makes: same parameter names and shapes
        built = nas.build_model(arch, 10, 1)
        assert {k: v.shape for k, v in net.state_dict().items()} == {k: v.shape for k, v in built.state_dict().items()}


def test_extracted_network_equals_supernet_in_train_mode_and_owns_its_weights(tiny_space):
    torch.manual_seed(1)
    supernet = randomize(Supernet(tiny_space), seed=4).train()
    arch = _archs(tiny_space, 1)[-1]
    net = extract(supernet, arch)
    assert net.training
    x = torch.randn(4, 1, 32, 32)
    torch.testing.assert_close(net(x), supernet(x, arch), rtol=0, atol=1e-4)
    supernet_params = {p.data_ptr() for p in supernet.parameters()} | {b.data_ptr() for b in supernet.buffers()}
    assert not any(t.data_ptr() in supernet_params for t in list(net.parameters()) + list(net.buffers()))


def test_supernet_rejects_spaces_and_archs_it_cannot_share_weights_for(supernet):
    with pytest.raises(SupernetError, match=r"stage 0 chooses \['op', 'se', 'skip', 'width'\]"):
        Supernet(nas.load_space("mnasnet", resolutions=[32]))
    mnas_space, mnas_arch = nas.load_preset("mnasnet_b1", resolutions=[32], num_classes=10, in_channels=1)
    x = torch.randn(1, 1, 32, 32)
    with pytest.raises(SupernetError, match="not in the supernet's space"):
        supernet(x, mnas_arch)
    wider = nas.load_space("ofa_mbv3", resolutions=[32], num_classes=10, in_channels=1)
    with pytest.raises(SupernetError, match="not in the supernet's space"):
        extract(supernet, largest_arch(wider))
    with pytest.raises(SupernetError, match="resize the batch"):
        supernet(torch.randn(1, 1, 28, 28), largest_arch(supernet.space))
    assert isinstance(SupernetError("x"), nas.HwnasError)


def test_elastic_resolution_runs_every_resolution():
    space = nas.load_space("ofa_mbv3", resolutions=[24, 32], num_classes=10, in_channels=1, width_mult=0.5)
    supernet = Supernet(space).eval()
    for resolution in (24, 32):
        arch = space.decode({**space.encode(largest_arch(space)), "resolution": resolution})
        x = torch.randn(2, 1, resolution, resolution)
        with torch.no_grad():
            torch.testing.assert_close(extract(supernet, arch)(x), supernet(x, arch), rtol=0, atol=1e-5)
