"""The target-aware derive: stays in the space, lands on a reachable target, leaves a decided α alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nas
from nas.proxyless import ProxylessNetwork, derive_to_target


@pytest.fixture(scope="module", params=["ofa_mbv3", "mnasnet"])
def net(request: pytest.FixtureRequest) -> ProxylessNetwork:
    space = nas.load_space(request.param, resolutions=[32], num_classes=10, in_channels=1, width_mult=0.5)
    return ProxylessNetwork(space)


def set_alpha(net: ProxylessNetwork, logits: list[np.ndarray]) -> None:
    with torch.no_grad():
        for a, v in zip(net.arch_parameters(), logits):
            a.copy_(torch.as_tensor(v, dtype=a.dtype))


def test_the_derive_never_leaves_the_space(net: ProxylessNetwork, synthetic_table) -> None:
    table = synthetic_table(net.space)
    rng = np.random.default_rng(0)
    spread = table.predict_many([net.space.sample(rng) for _ in range(50)], net.space)
    for trial in range(8):
        set_alpha(net, [rng.normal(0, 1.5, len(a)) for a in net.arch_parameters()])
        target = float(rng.uniform(0.8 * spread.min(), 1.2 * spread.max()))
        d = derive_to_target(net, table, target)
        assert net.space.contains(d.arch) and net.space.contains(d.argmax)
        assert d.predicted_ms == pytest.approx(table.predict(d.arch, net.space))
        assert d.logp_given_up >= -1e-9
        # never further from T than the argmax
        assert abs(d.predicted_ms - target) <= abs(d.argmax_ms - target) + 1e-12


def test_a_reachable_target_is_met_within_the_tolerance(net: ProxylessNetwork, synthetic_table) -> None:
    """Near-tied α whose argmax is the slowest arch: the derive moves it onto a target another arch meets."""
    table = synthetic_table(net.space)
    rng = np.random.default_rng(1)
    known = net.space.sample(rng)
    target = float(table.predict(known, net.space))
    set_alpha(net, [np.linspace(0, 0.3, len(a)) for a in net.arch_parameters()])  # last option wins by a hair
    d = derive_to_target(net, table, target, tolerance=0.05)
    assert d.argmax_ms > 1.05 * target  # the argmax alone misses it
    assert abs(d.predicted_ms / target - 1) <= 0.05 and d.flips > 0
    plain = derive_to_target(net, table, target, method="argmax")
    assert plain.arch == plain.argmax == d.argmax and plain.flips == 0


def test_a_decided_alpha_gives_the_argmax_unchanged(net: ProxylessNetwork, synthetic_table) -> None:
    table = synthetic_table(net.space)
    logits = []
    for a in net.arch_parameters():
        v = np.full(len(a), -30.0)
        v[-1] = 30.0
        logits.append(v)
    set_alpha(net, logits)
    argmax = net.derive()
    d = derive_to_target(net, table, 0.5 * float(table.predict(argmax, net.space)))
    assert d.arch == argmax and d.flips == 0 and d.logp_given_up == 0.0
