"""ProxylessNAS: α ↔ space mapping, binarized paths, two-path gradients, latency term, derive, seeds."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

import nas
from nas.proxyless import (ProxylessConfig, ProxylessError, ProxylessNetwork, ProxylessSearch, build_network,
                           run_proxyless)


@pytest.fixture(scope="module")
def ofa() -> nas.SearchSpace:
    return nas.load_space("ofa_mbv3", resolutions=[32], num_classes=10, in_channels=1,
                          width_mult=0.5).restrict(kernel=[3, 5], expand=[3, 6])


@pytest.fixture(scope="module")
def mnas() -> nas.SearchSpace:
    return nas.load_space("mnasnet", resolutions=[32], num_classes=10, in_channels=1, width_mult=0.5)


@pytest.fixture(params=["ofa", "mnas"])
def space(request: pytest.FixtureRequest) -> nas.SearchSpace:
    return request.getfixturevalue(request.param)


@pytest.fixture(params=[False, True], ids=["blocks", "shared"])
def share(request: pytest.FixtureRequest) -> bool:
    """A separate block per candidate, or candidates of one op sharing convolutions."""
    return request.param


def batch(n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


class RunCounter:
    """Forward hooks on every candidate block: which ones ran (and so hold activations)."""

    def __init__(self, net: ProxylessNetwork) -> None:
        self.ran: list[str] = []
        self.handles = [m.register_forward_hook(lambda mod, i, o, n=name: self.ran.append(n))
                        for name, m in net.candidate_modules()]

    def per_layer(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name in self.ran:
            layer = name.rsplit(".", 1)[0]
            out[layer] = out.get(layer, 0) + 1
        return out

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def test_alphas_are_the_space_choices(space: nas.SearchSpace) -> None:
    net = ProxylessNetwork(space)
    dims = space.dims
    assert net.arch_dims and all(d in dims for d in net.arch_dims)
    for d, a in zip(net.arch_dims, net.arch_parameters()):
        assert a.shape == (len(dims[d]),)
    # every multi-option choice is either searched or pinned (widths, resolution)
    multi = {d for d, o in dims.items() if len(o) > 1}
    assert multi == set(net.arch_dims) | set(net.pins)
    assert all(d.endswith(".width") or d == "resolution" or d.endswith(".skip") for d in net.pins)
    # residuals stay on (ProxylessNAS's candidates keep them) unless pin_skip=False searches them
    skips = [d for d in dims if d.endswith(".skip") and len(dims[d]) > 1]
    assert all(net.pins[d] is True for d in skips)
    assert set(skips) <= set(ProxylessNetwork(space, pin_skip=False).arch_dims)
    ids = {id(p) for p in net.arch_parameters()}
    assert not ids & {id(p) for p in net.weight_parameters()}
    assert len(ids) + len(net.weight_parameters()) == len(list(net.parameters()))
    if space.name == "mnasnet":  # stage-shared choices: one α per stage choice, one unit per stage
        assert "s2.op" in net.arch_dims and not any(".l" in d for d in net.arch_dims)
        assert [u.name for u in net.units if u.name.endswith(".ops")] == [f"s{i}.ops" for i in range(7)]
    else:  # per-layer kernel/expand: a unit per layer
        assert "s1.l3.kernel" in net.arch_dims and "s1.depth" in net.arch_dims


def test_one_hot_alpha_expected_latency_is_the_arch_latency(space: nas.SearchSpace, synthetic_table) -> None:
    table = synthetic_table(space)
    net = ProxylessNetwork(space)
    path = net.sample_path(torch.Generator().manual_seed(3))
    with torch.no_grad():
        for d, a in zip(net.arch_dims, net.arch_parameters()):
            a.fill_(-60.0)
            a[path[d]] = 60.0
    arch = net.arch_of(path)
    space.validate(arch)
    expected = table.expected(net.latency_probs(), space)
    assert float(expected.detach()) == pytest.approx(table.predict(arch, space), rel=1e-5)
    assert net.derive() == arch


def test_weight_step_runs_and_updates_one_path_only(space: nas.SearchSpace, share: bool, synthetic_table) -> None:
    config = ProxylessConfig(target_ms=1.0, share_weights=share)
    net = build_network(space, config, seed=0)
    search = ProxylessSearch(net, synthetic_table(space), config, seed=0)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    counter = RunCounter(net)
    gen_copy = torch.Generator().set_state(search.generator.get_state())
    path = net.sample_path(gen_copy)
    search.weight_step(*batch())
    counter.close()
    arch = net.arch_of(path)
    # exactly one candidate ran in every layer the sampled arch has, none elsewhere
    assert sum(counter.per_layer().values()) == len(arch.blocks)
    assert set(counter.per_layer().values()) == {1}
    ran = set(counter.ran)
    prefixes = {id(m): n for n, m in net.named_modules()}
    for name, module in net.candidate_modules():
        prefix = prefixes[id(module)]
        changed = any(not torch.equal(p, state[f"{prefix}.{n}"]) for n, p in module.state_dict().items())
        grads = [p.grad for p in module.parameters()]
        if name in ran:
            assert changed and any(g is not None for g in grads)
        else:
            assert not changed and all(g is None for g in grads), name
    assert all(p.grad is None for p in net.arch_parameters())
    if share:  # the op families the path ran got gradients, the others none
        for layer, pos in zip(net.layers, net._positions):
            present = net._present(pos, path)
            index = layer.route(pos.op_unit.combo_of(path) if pos.op_unit else ())[0] if present else None
            for f, shared in enumerate(layer.shared):
                grads = [p.grad for p in shared.parameters()]
                if index is not None and layer._family[index] == f:
                    assert any(g is not None and g.abs().sum() > 0 for g in grads), layer.name
                else:
                    assert all(g is None for g in grads), layer.name


def test_weight_step_clips_the_gradient_norm(mnas: nas.SearchSpace, synthetic_table) -> None:
    """A weight step moves the weights by lr·(1+momentum)·min(|g|, clip) (first Nesterov step, no decay)."""
    moved = {}
    for clip in (0.5, None):
        config = ProxylessConfig(target_ms=1.0, weight_grad_clip=clip, weight_decay=0.0)
        net = build_network(mnas, config, seed=0)
        before = [p.detach().clone() for p in net.weight_parameters()]
        ProxylessSearch(net, synthetic_table(mnas), config, seed=0).weight_step(*batch())
        moved[clip] = float(torch.stack([(p.detach() - b).norm() for p, b in zip(net.weight_parameters(), before)])
                            .norm())
    bound = config.weight_lr * (1 + config.weight_momentum) * 0.5
    assert moved[0.5] == pytest.approx(bound, rel=1e-3)  # the path's gradient norm at init is far above 0.5
    assert moved[None] > 10 * bound
    with pytest.raises(ProxylessError, match="weight_grad_clip"):
        ProxylessConfig(target_ms=1.0, weight_grad_clip=0.0)


def test_arch_step_runs_at_most_two_paths_and_moves_alpha(space: nas.SearchSpace, share: bool, synthetic_table) -> None:
    config = ProxylessConfig(target_ms=0.05, share_weights=share)
    net = build_network(space, config, seed=1)
    search = ProxylessSearch(net, synthetic_table(space), config, seed=1)
    weights = {k: v.clone() for k, v in net.state_dict().items() if "_alpha" not in k and "running" not in k
               and "num_batches" not in k}
    before = [a.detach().clone() for a in net.arch_parameters()]
    counter = RunCounter(net)
    search.arch_step(*batch())
    counter.close()
    assert counter.ran and max(counter.per_layer().values()) <= 2
    assert 2 in counter.per_layer().values()
    moved = {d: not torch.equal(a, b) for d, a, b in zip(net.arch_dims, net.arch_parameters(), before)}
    # every choice the latency depends on moves (skip does not change this table's latency)
    assert all(m for d, m in moved.items() if not d.endswith(".skip"))
    # the architecture step leaves every weight alone
    after = net.state_dict()
    assert all(torch.equal(after[k], v) for k, v in weights.items())
    assert all(p.grad is None for p in net.weight_parameters())


def test_forward_two_with_binary_gates_is_the_active_path(space: nas.SearchSpace, share: bool) -> None:
    net = ProxylessNetwork(space, share_weights=share).eval()
    a, b, active = net.sample_two(torch.Generator().manual_seed(5))
    gates = {u.name: F.one_hot(torch.tensor(active[u.name]), 2).float() for u in net.units}
    active_path = {}
    for unit in net.units:
        chosen = (a, b)[active[unit.name]]
        active_path.update({d: chosen[d] for d in unit.dims})
    x, _ = batch(2)
    with torch.no_grad():
        torch.testing.assert_close(net.forward_two(x, (a, b), gates), net(x, active_path))
        # and with one-hot α the DARTS-style all-paths forward is that path too
        for d, alpha in zip(net.arch_dims, net.arch_parameters()):
            alpha.fill_(-80.0)
            alpha[active_path[d]] = 80.0
        torch.testing.assert_close(net.forward_all(x), net(x, active_path))


def test_alpha_gradients_flow_through_ce_and_latency_terms(ofa: nas.SearchSpace, synthetic_table) -> None:
    table = synthetic_table(ofa)
    grads = {}
    for lam in (0.0, 50.0):
        config = ProxylessConfig(loss="add", lam_per_ms=lam)
        net = build_network(ofa, config, seed=2)
        search = ProxylessSearch(net, table, config, seed=2)
        search.arch_gradients(*batch())
        grads[lam] = torch.cat([a.grad.clone() for a in net.arch_parameters()])
    assert grads[0.0].abs().sum() > 0  # the two-path CE estimate alone moves α
    latency_part = grads[50.0] - grads[0.0]  # same seed: same sampled paths, same CE estimate
    # the latency term reaches every latency-relevant α (each per-layer kernel/expand and depth)
    net = build_network(ofa, ProxylessConfig(loss="add"), seed=2)
    direct = torch.autograd.grad(table.expected(net.latency_probs(), ofa), net.arch_parameters())
    torch.testing.assert_close(latency_part, 50.0 * torch.cat(direct), rtol=1e-4, atol=1e-6)
    assert all(g.abs().sum() > 0 for g in direct)
    # more latency pressure lowers the probability of the bigger kernel
    k = net.arch_dims.index("s1.l0.kernel")
    offsets = [0] + [len(a) for a in net.arch_parameters()]
    start = sum(offsets[: k + 1])
    assert latency_part[start + 1] > latency_part[start]  # gradient of the k5 logit > k3: descent lowers k5


def test_mul_loss_gradient_sign_flips_around_the_target(ofa: nas.SearchSpace, synthetic_table) -> None:
    table = synthetic_table(ofa)
    net = ProxylessNetwork(ofa)
    uniform_ms = float(table.expected(net.latency_probs(), ofa).detach())
    signs = []
    for target, beta_below in ((uniform_ms / 2, None), (uniform_ms * 2, -2.0)):
        config = ProxylessConfig(target_ms=target, beta=2.0, beta_below=beta_below)
        net = build_network(ofa, config, seed=4)
        search = ProxylessSearch(net, table, config, seed=4)
        search.arch_gradients(*batch())
        g = net.alpha("s1.l0.expand").grad
        signs.append(float(g[1] - g[0]))
    assert signs[0] > 0 > signs[1]  # above target: push expand 6 down; below (beta_below < 0): up


def test_derive_is_inside_the_space(space: nas.SearchSpace) -> None:
    net = ProxylessNetwork(space, pins={"s2.width": space.dims["s2.width"][0]} if "s2.width" in space.dims else {})
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        with torch.no_grad():
            for a in net.arch_parameters():
                a.copy_(torch.randn(a.shape, generator=g) * 3)
        arch = net.derive()
        space.validate(arch)
        assert net.arch_of(net.path_of(arch)) == arch


def test_same_seed_same_result(ofa: nas.SearchSpace, synthetic_table) -> None:
    table = synthetic_table(ofa)
    config = ProxylessConfig(target_ms=0.1, steps=6, warmup_steps=2, batch_size=16, log_every=3, n_derived=2,
                             arch_lr=0.05)
    runs = [run_proxyless(ofa, table, "fashion_mnist_tiny", config, seed=s, progress=False) for s in (7, 7, 8)]
    assert runs[0].derived == runs[1].derived
    assert runs[0].probabilities == runs[1].probabilities
    assert [h | {"step": 0} for h in runs[0].history] == [h | {"step": 0} for h in runs[1].history]
    assert runs[0].probabilities != runs[2].probabilities
    for arch in runs[0].derived:
        ofa.validate(arch)
    assert len(set(runs[0].derived)) == 2
    assert runs[0].predicted_ms[0] == pytest.approx(table.predict(runs[0].derived[0], ofa))
    assert len(runs[0].history) == 2 and runs[0].history[-1]["step"] == 6


def test_shared_weights_search_is_reproducible_and_in_the_space(mnas: nas.SearchSpace, synthetic_table) -> None:
    table = synthetic_table(mnas)
    config = ProxylessConfig(target_ms=0.1, steps=4, warmup_steps=1, batch_size=8, log_every=2, share_weights=True)
    runs = [run_proxyless(mnas, table, "fashion_mnist_tiny", config, seed=3, progress=False) for _ in range(2)]
    assert runs[0].derived == runs[1].derived and runs[0].probabilities == runs[1].probabilities
    mnas.validate(runs[0].derived[0])
    # residuals held on (pin_skip): every layer whose shape allows one has it
    keys = [k for k in runs[0].derived[0].block_keys(10, 1) if k.kind == "block"]
    allowed = [k for k in keys if k.stride == 1 and k.in_channels == k.out_channels]
    assert allowed and all(k.skip for k in allowed)


def test_binarized_step_saves_a_fraction_of_the_all_paths_activations(mnas: nas.SearchSpace, share: bool) -> None:
    from nas.proxyless import saved_activation_bytes

    net = ProxylessNetwork(mnas, share_weights=share)
    x, y = batch(4)
    path = net.sample_path(torch.Generator().manual_seed(0))
    single = saved_activation_bytes(lambda: F.cross_entropy(net(x, path), y), net.parameters())
    every = saved_activation_bytes(lambda: F.cross_entropy(net.forward_all(x), y), net.parameters())
    assert 0 < single < every / 3


def test_bad_inputs_are_named(ofa: nas.SearchSpace) -> None:
    with pytest.raises(ProxylessError, match="s9.width"):
        ProxylessNetwork(ofa, pins={"s9.width": 3})
    with pytest.raises(ProxylessError, match="s1.depth=7"):
        ProxylessNetwork(ofa, pins={"s1.depth": 7})
    with pytest.raises(ProxylessError, match="target_ms"):
        ProxylessConfig(loss="mul")
    with pytest.raises(nas.ConfigError, match="bogus: unknown key"):
        ProxylessConfig.from_dict({"target_ms": 1.0, "bogus": 1})
    with pytest.raises(ProxylessError, match="loss"):
        ProxylessConfig(loss="pow", target_ms=1.0)
    assert issubclass(ProxylessError, nas.HwnasError)
    with pytest.raises(ProxylessError, match="nothing to search"):
        ProxylessNetwork(ofa.restrict(kernel=[3], expand=[3], depth=[2]))
    # experiment defaults fill in what the strategy options leave out; options win
    config = ProxylessConfig.from_dict({"steps": 5, "warmup_steps": 1}, target_ms=2.0, n_derived=3)
    assert (config.target_ms, config.n_derived, config.steps) == (2.0, 3, 5)
    assert ProxylessConfig.from_dict({"target_ms": 1.0}, target_ms=2.0).target_ms == 1.0
    with pytest.raises(ProxylessError, match="expected"):
        run_proxyless(ofa, object(), "fashion_mnist_tiny", ProxylessConfig(target_ms=1.0), seed=0, progress=False)


def test_pinned_choices_are_not_searched(ofa: nas.SearchSpace) -> None:
    net = ProxylessNetwork(ofa, pins={"s1.depth": 2, "s2.l0.kernel": 5})
    assert "s1.depth" not in net.arch_dims and "s2.l0.kernel" not in net.arch_dims
    arch = net.derive()
    assert arch.depths[1] == 2 and arch.stages[2][0].kernel == 5
    # layers beyond a pinned depth are not even built
    assert [layer.name for layer in net.layers if layer.name.startswith("s1.")] == ["s1.l0", "s1.l1"]
    assert dataclasses.is_dataclass(ProxylessConfig)


def test_shared_candidates_are_their_blocks_on_shared_weights(mnas: nas.SearchSpace) -> None:
    """Every candidate computes `nas.build_block` of its spec on weights sliced from its op's `SharedOp`:
    smaller kernels are centre crops, mb3 the first half of mb6's expanded channels, SE an add-on."""
    from nas._model import Block

    net = ProxylessNetwork(mnas, share_weights=True).train()
    blocks = ProxylessNetwork(mnas)
    assert [len(layer.shared) for layer in net.layers] == [3] * len(net.layers)  # conv, ds, mb
    assert [len(a.candidates) for a in net.layers] == [len(b.candidates) for b in blocks.layers]
    shared_params = sum(p.numel() for p in net.weight_parameters())
    assert shared_params < sum(p.numel() for p in blocks.weight_parameters()) / 2
    layer = net.layers[5]  # stage 2, first layer: stride 2
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial BN statistics and SE biases
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    x = torch.randn(4, layer.in_channels, 8, 8, generator=g)
    states = {}
    for index, candidate in enumerate(layer.candidates):
        shared = layer.shared[layer._family[index]]
        block = Block(candidate.spec, layer.in_channels).train()
        block.load_state_dict(candidate.static_state(shared))
        torch.testing.assert_close(candidate(x, shared), block(x), rtol=1e-5, atol=1e-5)
        states[candidate.spec.short()] = candidate.static_state(shared)
    k3, k5 = states["ir_k3_s2_e6_c16"]["dw.conv.weight"], states["ir_k5_s2_e6_c16"]["dw.conv.weight"]
    torch.testing.assert_close(k3, k5[:, :, 1:4, 1:4])
    e3, e6 = states["ir_k5_s2_e3_c16"]["expand.conv.weight"], states["ir_k5_s2_e6_c16"]["expand.conv.weight"]
    torch.testing.assert_close(e3, e6[: e3.shape[0]])
    se, plain = states["ir_k5_s2_e6_c16_se"], states["ir_k5_s2_e6_c16"]
    torch.testing.assert_close(se["project.conv.weight"], plain["project.conv.weight"])
    assert not torch.equal(se["project.bn.weight"], plain["project.bn.weight"])  # private batch norms
