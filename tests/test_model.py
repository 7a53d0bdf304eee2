"""The model builder and the spec-based counters."""

import numpy as np
import pytest
import torch
from torch import nn

from nas import build_block, build_model, count_macs, count_params, list_presets, load_preset, load_space


def _hook_macs(model: nn.Module, resolution: int, in_channels: int) -> int:
    """MACs measured from the real module graph: every conv and linear layer, by forward hooks."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1]
        total += out.numel() // out.shape[0] * (m.in_channels // m.groups) * k

    def linear_hook(m: nn.Linear, _inp, out):
        nonlocal total
        total += m.in_features * m.out_features

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(conv_hook)
        elif isinstance(m, nn.Linear):
            m.register_forward_hook(linear_hook)
    with torch.no_grad():
        model.eval()(torch.zeros(1, in_channels, resolution, resolution))
    return total


def test_published_sizes():
    # MobileNetV2 1.0: 3.50 M params, 300 M MACs; MnasNet-B1 1.0: 4.38 M params (1000 classes, 224x224)
    _, mbv2 = load_preset("mobilenetv2_100")
    assert abs(count_params(mbv2) / 3.50e6 - 1) <= 0.02
    assert abs(count_macs(mbv2) / 300e6 - 1) <= 0.05
    _, b1 = load_preset("mnasnet_b1")
    assert abs(count_params(b1) / 4.38e6 - 1) <= 0.02


@pytest.mark.parametrize("name", ["mnasnet", "ofa_mbv3"])
def test_counters_match_the_built_network(name):
    space = load_space(name, resolutions=[32], num_classes=10, in_channels=1)
    rng = np.random.default_rng(0)
    for _ in range(8):
        arch = space.sample(rng)
        model = build_model(arch, 10, 1)
        assert count_params(arch, 10, 1) == sum(p.numel() for p in model.parameters())
        assert count_macs(arch, 10, 1) == _hook_macs(model, 32, 1)


@pytest.mark.parametrize("preset", sorted(list_presets()))
@pytest.mark.parametrize("resolution, classes, channels", [(32, 10, 1), (224, 1000, 3)])
def test_every_preset_builds_and_runs(preset, resolution, classes, channels):
    space, arch = load_preset(preset, resolutions=[resolution], num_classes=classes, in_channels=channels)
    model = build_model(arch, classes, channels)
    x = torch.randn(2, channels, resolution, resolution)
    model.train()
    out = model(x)
    assert out.shape == (2, classes)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x[:1]), model(x)[:1], atol=1e-5)


def test_blocks_are_the_layers_of_the_network():
    space = load_space("ofa_mbv3", resolutions=[32], num_classes=10, in_channels=1)
    arch = space.sample(np.random.default_rng(3))
    model = build_model(arch, 10, 1).eval()
    keys = space.block_keys(arch)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        y = model.stem(x)
        for key, block in zip(keys[1:-1], model.blocks):
            single = build_block(key).eval()
            single.load_state_dict(block.state_dict())
            assert y.shape[1:] == (key.in_channels, key.in_hw, key.in_hw)
            y, expected = single(y), block(y)
            assert torch.equal(y, expected)
        assert torch.equal(model.head(y), model(x))
