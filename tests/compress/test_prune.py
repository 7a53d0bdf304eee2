"""Channel pruning: the pruned network is the plain network of its arch with the kept weights, and an
explicit MBConv width travels through the arch, its JSON, the table keys and the table CSV."""

from __future__ import annotations

import json

import pytest
import torch

from nas import Arch, build_model
from nas._arch import ArchError, BlockKey, BlockSpec, HeadSpec
from nas.compress import importance, prunable, prune, uniform, with_widths
from nas.latency import LatencyTable


def small_arch() -> Arch:
    stem = BlockSpec("conv", 3, 2, 8)
    stages = ((BlockSpec("mb", 3, 2, 16, expand=4, se=0.25, act="hswish"),
               BlockSpec("mb", 5, 1, 16, expand=3, skip=True)),
              (BlockSpec("ds", 3, 1, 16, skip=True),))
    return Arch(16, stem, stages, HeadSpec(64, feature_channels=0))


def randomized(arch: Arch, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = build_model(arch, num_classes=10, in_channels=1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


def test_prunable_widths_and_uniform():
    arch = small_arch()
    assert prunable(arch) == {"block0": 32, "block1": 48, "head": 64}
    half = uniform(arch, 0.5)
    assert prunable(half) == {"block0": 16, "block1": 24, "head": 32}
    assert prunable(uniform(arch, 0.01)) == {"block0": 8, "block1": 8, "head": 8}
    with pytest.raises(ValueError, match="block2"):
        with_widths(arch, {"block2": 8})  # a ds block has no expanded width


def test_pruned_equals_a_model_built_from_its_arch_with_the_kept_weights():
    arch = small_arch()
    net = randomized(arch)
    pruned = prune(prune(prune(net, "block0", 24), "block1", 16), "head", 40)
    assert prunable(pruned.arch) == {"block0": 24, "block1": 16, "head": 40}
    ref = build_model(pruned.arch, num_classes=10, in_channels=1).eval()
    ref.stem.load_state_dict(net.stem.state_dict())
    ref.blocks[2].load_state_dict(net.blocks[2].state_dict())
    with torch.no_grad():
        for i in (0, 1):  # by hand: keep the expanded channels whose projection columns have the largest L1 norm
            old, new = net.blocks[i], ref.blocks[i]
            keep = torch.sort(torch.argsort(old.project.conv.weight.abs().sum((0, 2, 3)), descending=True)[
                :new.dw.conv.weight.shape[0]]).values
            for a, b in ((old.expand, new.expand), (old.dw, new.dw)):
                b.conv.weight.copy_(a.conv.weight[keep])
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(b.bn, name).copy_(getattr(a.bn, name)[keep])
            new.project.load_state_dict({"conv.weight": old.project.conv.weight[:, keep],
                                         **{f"bn.{k}": v for k, v in old.project.bn.state_dict().items()}})
            if old.spec.se:
                r = new.se.reduce.weight.shape[0]
                se_keep = torch.sort(torch.argsort(old.se.expand.weight[keep].abs().sum((0, 2, 3)),
                                                   descending=True)[:r]).values
                new.se.reduce.weight.copy_(old.se.reduce.weight[se_keep][:, keep])
                new.se.reduce.bias.copy_(old.se.reduce.bias[se_keep])
                new.se.expand.weight.copy_(old.se.expand.weight[keep][:, se_keep])
                new.se.expand.bias.copy_(old.se.expand.bias[keep])
        keep = torch.sort(torch.argsort(net.head.classifier.weight.abs().sum(0), descending=True)[:40]).values
        ref.head.conv.conv.weight.copy_(net.head.conv.conv.weight[keep])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(ref.head.conv.bn, name).copy_(getattr(net.head.conv.bn, name)[keep])
        ref.head.classifier.weight.copy_(net.head.classifier.weight[:, keep])
        ref.head.classifier.bias.copy_(net.head.classifier.bias)
        x = torch.randn(4, 1, 16, 16)
        assert pruned.training is False
        torch.testing.assert_close(pruned(x), ref(x))
        assert not torch.allclose(pruned(x), net(x), atol=1e-3)  # it did prune something that mattered


def test_channels_nothing_reads_are_pruned_first_and_change_nothing():
    arch = small_arch()
    net = randomized(arch, seed=1)
    with torch.no_grad():
        dead = torch.tensor([1, 5, 9, 30, 31, 2, 17, 20])
        net.blocks[0].project.conv.weight[:, dead] = 0
        net.blocks[0].se.reduce.weight[:, dead] = 0  # the squeeze reads them too
        net.blocks[1].project.conv.weight[:, :8] = 0
        net.head.classifier.weight[:, 56:] = 0
        x = torch.randn(3, 1, 16, 16)
        before = net(x)
        pruned = prune(prune(prune(net, "block0", 24), "block1", 40), "head", 56)
        torch.testing.assert_close(pruned(x), before, rtol=1e-5, atol=1e-5)
    assert importance(net, "head")[56:].sum() == 0


def test_prune_rejects_bad_requests():
    net = randomized(small_arch())
    with pytest.raises(ValueError, match="block2"):
        prune(net, "block2", 8)
    with pytest.raises(ValueError, match="width 40 of block0"):
        prune(net, "block0", 40)


def test_explicit_mid_width_travels_through_arch_json_and_keys():
    arch = with_widths(small_arch(), {"block0": 20, "block1": 48})
    b0, b1 = arch.blocks[:2]
    assert (b0.mid, b1.mid) == (20, 0)  # 48 = 16 x 3 is the grid width: stored as 0, one spelling each
    assert arch == with_widths(small_arch(), {"block0": 20})
    assert "m20" in b0.short() and "mid" not in json.dumps(small_arch().to_dict())
    assert Arch.from_json(arch.to_json()) == arch
    keys = arch.block_keys(10, 1)
    assert keys[1].mid == 20 and keys[1].expand == 1 and keys[2].mid == 0
    assert BlockKey.from_dict(keys[1].to_dict()) == keys[1]
    assert build_model(arch, 10, 1).blocks[0].expand.conv.weight.shape[0] == 20
    with pytest.raises(ArchError, match="mid"):
        BlockSpec("ds", 3, 1, 16, mid=8)


def test_table_csv_gains_a_mid_column_only_when_it_holds_pruned_layers(tmp_path):
    keys = small_arch().block_keys(10, 1)
    stats = {"latency_ms": 0.1, "mean_ms": 0.1, "std_ms": 0.01, "p90_ms": 0.11, "count": 10, "passes": 3,
             "spread_pct": 1.0, "remeasured": 0, "flagged": 0}
    meta = {"backend": "onnxruntime", "backend_version": "x", "threads": 1, "device_name": "t", "protocol": {}}
    grid = LatencyTable({k: stats for k in keys}, meta)
    grid.save(tmp_path / "grid.csv")
    assert "mid" not in (tmp_path / "grid.csv").read_text().splitlines()[0].split(",")
    pruned = with_widths(small_arch(), {"block0": 20}).block_keys(10, 1)[1]
    grid.add({pruned: {**stats, "latency_ms": 0.07}}, {"entries": 1})
    grid.save(tmp_path / "ext.csv")
    header = (tmp_path / "ext.csv").read_text().splitlines()[0].split(",")
    assert header[header.index("num_classes") + 1] == "mid"
    back = LatencyTable.load(tmp_path / "ext.csv")
    assert back.lookup_ms(pruned) == pytest.approx(0.07) and len(back) == len(keys) + 1
    assert back.metadata["extended"] == [{"entries": 1}]
    assert set(LatencyTable.load(tmp_path / "grid.csv").keys()) == set(keys)
