"""Dynamic ops equal the static `nas._model.Block` for every choice; kernel transforms."""

from __future__ import annotations

import itertools

import pytest
import torch

from nas import BlockSpec
from nas._model import Block
from nas.supernet import DynamicMBBlock, SupernetError

from .conftest import randomize

KERNELS, EXPANDS = (3, 5, 7), (3, 4, 6)


def _block(cin: int, cout: int, stride: int, se: float, act: str = "hswish") -> DynamicMBBlock:
    torch.manual_seed(0)
    return randomize(DynamicMBBlock(cin, cout, stride, act, se, KERNELS, EXPANDS))


@pytest.mark.parametrize("cin,cout,stride,se,skip", [(16, 16, 1, 0.25, True), (16, 24, 2, 0.0, False),
                                                     (8, 8, 1, 0.0, False)])
@pytest.mark.parametrize("training", [False, True])
def test_dynamic_block_equals_static_block_for_every_choice(cin, cout, stride, se, skip, training):
    x = torch.randn(3, cin, 9, 9, generator=torch.Generator().manual_seed(1))
    for kernel, expand in itertools.product(KERNELS, EXPANDS):
        dyn = _block(cin, cout, stride, se).train(training)
        spec = BlockSpec("mb", kernel, stride, cout, expand, se, skip, "hswish")
        static = Block(spec, cin)
        static.load_state_dict(dyn.static_state(spec))
        static.train(training)
        y_dyn, y_static = dyn(x, spec), static(x)
        assert y_dyn.shape == (3, cout, 9 // stride + (9 % stride), 9 // stride + (9 % stride))
        torch.testing.assert_close(y_dyn, y_static, rtol=0, atol=1e-5)
        if training:  # the sliced running statistics moved exactly like the static ones
            after = dyn.static_state(spec)
            for name, value in static.state_dict().items():
                torch.testing.assert_close(after[name], value, rtol=0, atol=1e-6, msg=name)


def test_training_step_updates_only_the_active_slice_of_running_stats():
    dyn = _block(16, 16, 1, 0.25).train()
    before = dyn.dw.bn.running_mean.clone()
    dyn(torch.randn(2, 16, 8, 8), BlockSpec("mb", 3, 1, 16, 3, 0.25, True, "hswish"))
    mid = 16 * 3
    assert not torch.equal(dyn.dw.bn.running_mean[:mid], before[:mid])
    assert torch.equal(dyn.dw.bn.running_mean[mid:], before[mid:])


def test_kernel_transform_matrices_shapes_and_identity_start():
    dyn = DynamicMBBlock(8, 8, 1, "relu", 0.0, KERNELS, EXPANDS)
    assert {k: tuple(v.shape) for k, v in dyn.kernel_transforms.items()} == {"7to5": (25, 25), "5to3": (9, 9)}
    for matrix in dyn.kernel_transforms.values():
        assert torch.equal(matrix, torch.eye(matrix.shape[0]))
    w = dyn.dw.conv.weight
    assert tuple(dyn.dw.conv.weight.shape) == (48, 1, 7, 7)
    # at identity the transformed kernels are the center crops of the 7x7 one
    torch.testing.assert_close(dyn.kernel(5, 48), w[:, :, 1:6, 1:6])
    torch.testing.assert_close(dyn.kernel(3, 24), w[:24, :, 2:5, 2:5])
    assert dyn.kernel(7, 48) is not None and tuple(dyn.kernel(7, 32).shape) == (32, 1, 7, 7)


def test_kernel_3_goes_through_both_transforms_and_gets_their_gradients():
    dyn = _block(8, 8, 1, 0.0)
    w = dyn.dw.conv.weight
    m75, m53 = dyn.kernel_transforms["7to5"], dyn.kernel_transforms["5to3"]
    k5 = (w[:, :, 1:6, 1:6].reshape(48, 25) @ m75).reshape(48, 1, 5, 5)
    k3 = (k5[:, :, 1:4, 1:4].reshape(48, 9) @ m53).reshape(48, 1, 3, 3)
    torch.testing.assert_close(dyn.kernel(3, 48), k3)
    dyn(torch.randn(2, 8, 6, 6), BlockSpec("mb", 3, 1, 8, 6, 0.0, False, "hswish")).sum().backward()
    assert m75.grad is not None and m53.grad is not None and m53.grad.abs().sum() > 0
    dyn.zero_grad(set_to_none=True)
    dyn(torch.randn(2, 8, 6, 6), BlockSpec("mb", 7, 1, 8, 6, 0.0, False, "hswish")).sum().backward()
    assert m75.grad is None and m53.grad is None


@pytest.mark.parametrize("spec,words", [
    (BlockSpec("mb", 9, 1, 8, 6, 0.0, False, "relu"), "kernel must be one of"),
    (BlockSpec("mb", 3, 1, 8, 5, 0.0, False, "relu"), "expand one of"),
    (BlockSpec("mb", 3, 2, 8, 6, 0.0, False, "relu"), "does not fit"),
    (BlockSpec("mb", 3, 1, 16, 6, 0.0, False, "relu"), "does not fit"),
])
def test_block_rejects_specs_it_cannot_run(spec, words):
    dyn = DynamicMBBlock(8, 8, 1, "relu", 0.0, KERNELS, EXPANDS)
    with pytest.raises(SupernetError, match=words):
        dyn.check(spec)


def test_sort_channels_keeps_the_full_block_and_orders_importance():
    dyn = _block(16, 16, 1, 0.25).eval()
    x = torch.randn(2, 16, 8, 8)
    full = BlockSpec("mb", 5, 1, 16, 6, 0.25, True, "hswish")
    small = BlockSpec("mb", 5, 1, 16, 3, 0.25, True, "hswish")
    optimizer = torch.optim.SGD(dyn.parameters(), lr=0.1, momentum=0.9)
    dyn(x, full).sum().backward()
    optimizer.step()  # creates momentum buffers
    with torch.no_grad():
        before_full, before_small = dyn(x, full), dyn(x, small)
    momentum_before = optimizer.state[dyn.project.conv.weight]["momentum_buffer"].clone()
    perm = dyn.sort_channels(optimizer)
    assert sorted(perm.tolist()) == list(range(96)) and perm.tolist() != list(range(96))
    importance = dyn.channel_importance()
    assert torch.all(importance[:-1] >= importance[1:])
    with torch.no_grad():
        torch.testing.assert_close(dyn(x, full), before_full, rtol=1e-5, atol=1e-4)  # summation order only
        assert (dyn(x, small) - before_small).abs().max() > 1e-3  # now the important channels are used
    torch.testing.assert_close(optimizer.state[dyn.project.conv.weight]["momentum_buffer"],
                               momentum_before[:, perm])
