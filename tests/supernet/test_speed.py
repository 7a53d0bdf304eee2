"""Training-speed changes keep the maths: depthwise taps cropped to the map, weights-only checkpoints,
and the thread governor."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import nas.supernet._ops as ops
import nas.supernet._threads as threads_module
from nas import BlockSpec
from nas.supernet import (CheckpointError, DynamicMBBlock, TrainConfig, checkpoint_evaluator,
                          largest_arch, load_checkpoint, slim_checkpoint, smallest_arch, supernet_from_checkpoint,
                          train_supernet)
from nas.supernet._ops import reachable_taps
from nas.supernet._threads import ThreadGovernor

from .conftest import randomize
from .test_train import tiny_config


@pytest.mark.parametrize("size,kernel,expected", [(1, 7, 1), (2, 7, 3), (3, 7, 5), (4, 7, 7), (14, 7, 7),
                                                  (2, 5, 3), (1, 3, 1), (2, 3, 3)])
def test_reachable_taps_keep_the_centre_the_map_can_reach(size, kernel, expected):
    weight = torch.arange(4 * kernel * kernel, dtype=torch.float32).reshape(4, 1, kernel, kernel)
    taps = reachable_taps(weight, size, size)
    assert taps.shape == (4, 1, expected, expected)
    start = (kernel - expected) // 2
    assert torch.equal(taps, weight[:, :, start:start + expected, start:start + expected])


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel", [3, 5, 7])
def test_cropped_depthwise_conv_equals_the_full_kernel_forward_and_backward(size, stride, kernel):
    g = torch.Generator().manual_seed(size * 100 + stride * 10 + kernel)
    x = torch.randn(4, 6, size, size, generator=g)
    weight = torch.randn(6, 1, kernel, kernel, generator=g)
    results = []
    for crop in (False, True):
        xi, wi = x.clone().requires_grad_(), weight.clone().requires_grad_()
        w = reachable_taps(wi, size, size) if crop else wi
        y = F.conv2d(xi, w, None, stride, (w.shape[-2] // 2, w.shape[-1] // 2), 1, 6)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        results.append((y.detach(), xi.grad, wi.grad))
    (y0, gx0, gw0), (y1, gx1, gw1) = results
    assert y0.shape == y1.shape
    torch.testing.assert_close(y1, y0, rtol=0, atol=1e-5)
    torch.testing.assert_close(gx1, gx0, rtol=0, atol=1e-5)
    torch.testing.assert_close(gw1, gw0, rtol=0, atol=1e-5)
    if 2 * size - 1 < kernel:  # the cropped taps only ever saw padding: zero gradient either way
        assert float(gw0.abs().max()) > 0
        inner = (kernel - (2 * size - 1)) // 2
        assert float(gw0[:, :, :inner].abs().max()) == 0.0


@pytest.mark.parametrize("channels_last", [False, True])
def test_dynamic_block_on_tiny_maps_matches_the_uncropped_block(monkeypatch, channels_last):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    block = randomize(DynamicMBBlock(8, 8, 1, "hswish", 0.25, (3, 5, 7), (3, 4, 6))).to(memory_format=fmt).train()
    x = torch.randn(5, 8, 2, 2).contiguous(memory_format=fmt)
    spec = BlockSpec("mb", 7, 1, 8, 6, 0.25, True, "hswish")
    outs = []
    for crop in (True, False):
        if not crop:
            monkeypatch.setattr(ops, "reachable_taps", lambda weight, height, width: weight)
        block.zero_grad()
        y = block(x, spec)
        y.square().sum().backward()
        outs.append((y.detach(), {n: p.grad.clone() for n, p in block.named_parameters() if p.grad is not None}))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=0, atol=1e-5)
    assert outs[0][1].keys() == outs[1][1].keys()
    for name in outs[0][1]:
        torch.testing.assert_close(outs[0][1][name], outs[1][1][name], rtol=1e-4, atol=1e-5, msg=name)


def test_weights_only_checkpoint_loads_everywhere_but_cannot_resume(tmp_path):
    config = TrainConfig.from_dict(tiny_config(tmp_path / "run", phases=[{"name": "full", "steps": 2, "lr": 0.05}]))
    train_supernet(config, progress=False, log=lambda _: None)
    full = tmp_path / "run" / "checkpoint.pt"
    slim = tmp_path / "slim.pt"
    slim_checkpoint(full, slim)
    assert slim.stat().st_size < 0.6 * full.stat().st_size
    payload = load_checkpoint(slim)
    assert payload["weights_only"] and "optimizer" not in payload
    a, b = supernet_from_checkpoint(full), supernet_from_checkpoint(slim)
    for (name, t), u in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(t, u), name
    _, evaluate_full = checkpoint_evaluator(full)
    _, evaluate_slim = checkpoint_evaluator(slim)
    for arch in (largest_arch(a.space), smallest_arch(a.space)):
        assert evaluate_full(arch) == evaluate_slim(arch)
    (tmp_path / "resume").mkdir()
    slim.replace(tmp_path / "resume" / "checkpoint.pt")
    again = TrainConfig.from_dict(tiny_config(tmp_path / "resume", phases=[{"name": "full", "steps": 2, "lr": 0.05}]))
    with pytest.raises(CheckpointError, match="weights only"):
        train_supernet(again, progress=False, log=lambda _: None)


def test_full_checkpoint_still_needs_its_resume_keys(tmp_path):
    config = TrainConfig.from_dict(tiny_config(tmp_path, phases=[{"name": "full", "steps": 1, "lr": 0.05}]))
    train_supernet(config, progress=False, log=lambda _: None)
    payload = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del payload["optimizer"]
    torch.save(payload, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="lacks \\['optimizer'\\]"):
        load_checkpoint(tmp_path / "broken.pt")


@pytest.mark.parametrize("cpus,max_threads,others,want", [(2, 2, 0.0, 2), (2, 2, 0.2, 2), (2, 2, 0.3, 1),
                                                         (2, 2, 1.0, 1), (2, 2, 2.5, 1), (16, 16, 3.0, 13),
                                                         (16, 8, 0.1, 8)])
def test_governor_runs_as_many_threads_as_cores_are_free(cpus, max_threads, others, want):
    assert ThreadGovernor(max_threads, cpus=cpus).choose(others) == want


def test_governor_drops_to_one_thread_when_another_process_takes_a_core_and_comes_back(monkeypatch):
    clock = {"wall": 0.0, "busy": 0.0, "own": 0.0}
    monkeypatch.setattr(threads_module, "_busy_seconds", lambda: clock["busy"])
    monkeypatch.setattr(threads_module, "_own_seconds", lambda: clock["own"])
    monkeypatch.setattr(threads_module.time, "monotonic", lambda: clock["wall"])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        governor = ThreadGovernor(2, interval_s=2.0, cpus=2)
        assert governor.enabled

        def run(seconds: float, own_cores: float, other_cores: float) -> int | None:
            clock["wall"] += seconds
            clock["own"] += seconds * own_cores
            clock["busy"] += seconds * (own_cores + other_cores)
            return governor.update()

        assert run(1.0, 2.0, 1.0) is None  # within the interval: no measurement yet
        assert run(1.5, 1.2, 0.8) == 1 and torch.get_num_threads() == 1
        assert run(2.0, 1.0, 0.9) is None and torch.get_num_threads() == 1
        assert run(2.0, 1.0, 0.05) == 2 and torch.get_num_threads() == 2
        assert governor.switches == 2
    finally:
        torch.set_num_threads(before)


def test_governor_reads_this_machine_and_stays_off_when_threads_are_fixed(tmp_path):
    assert threads_module._busy_seconds() is not None  # Linux: /proc/stat
    assert not ThreadGovernor(1).enabled  # nothing to choose between
    logs: list[str] = []  # the tests fix one thread (conftest): training keeps it, bit-reproducible
    config = TrainConfig.from_dict(tiny_config(tmp_path, phases=[{"name": "full", "steps": 1, "lr": 0.05}]))
    train_supernet(config, progress=False, log=logs.append)
    assert any("1 thread(s) fixed" in line for line in logs), logs
