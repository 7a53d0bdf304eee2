"""ProxylessNAS memory: activations a binarized step keeps vs a DARTS-style all-paths step, same network.

    python experiments/benchmarks/proxyless_memory.py [--spaces ofa_mbv3 mnasnet] [--resolution 32]
        [--batch 64] [--samples 8] [--out experiments/benchmarks/proxyless_memory.csv]

For each space (num_classes 10, in_channels 1, width_mult 1, as the shipped CPU tables) one
over-parameterized `ProxylessNetwork` is built (`--share`: a block per candidate, and candidates of one
op sharing convolutions) and three training forwards are measured on the same
batch: a weight step (one sampled path per unit), an architecture step (two paths mixed by binary
gates) and the all-paths forward (every candidate weighted by its probability). The measure is the
bytes of the distinct tensors autograd saves for backward (`saved_activation_bytes`, parameters
excluded): what a step must keep between forward and backward, deterministic, independent of the
allocator and of other processes. Paths are drawn from uniform α (seed 0); mean and max over
`--samples` draws. Also the wall time of forward+backward per mode (median of 3, one thread).
Goal: binarized ≤ 1/3 of all-paths. Run under the CPU lock.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import nas
from nas.proxyless import ProxylessNetwork, saved_activation_bytes

from _results import write_csv


def timed(step) -> float:  # noqa: ANN001
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        step().backward()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def measure(space_name: str, resolution: int, batch: int, samples: int, share: bool) -> dict[str, object]:
    space = nas.load_space(space_name, resolutions=[resolution], num_classes=10, in_channels=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = ProxylessNetwork(space, share_weights=share).train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, resolution, resolution, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    params = list(net.parameters())
    one, two = [], []
    for _ in range(samples):
        path = net.sample_path(g)
        one.append(saved_activation_bytes(lambda: F.cross_entropy(net(x, path), y), params))
        a, b, active = net.sample_two(g)
        gates = {u.name: F.one_hot(torch.tensor(active[u.name]), 2).float().requires_grad_() for u in net.units}
        two.append(saved_activation_bytes(lambda: F.cross_entropy(net.forward_two(x, (a, b), gates), y), params))
    every = saved_activation_bytes(lambda: F.cross_entropy(net.forward_all(x), y), params)
    path = net.sample_path(g)
    a, b, active = net.sample_two(g)
    gates = {u.name: F.one_hot(torch.tensor(active[u.name]), 2).float().requires_grad_() for u in net.units}
    mib = 2.0 ** 20
    return {
        "space": space_name, "share_weights": share, "resolution": resolution, "batch": batch,
        "candidates": sum(len(layer.candidates) for layer in net.layers),
        "weights_mib": round(sum(p.numel() * p.element_size() for p in params) / mib, 1),
        "one_path_mib_mean": round(statistics.mean(one) / mib, 2), "one_path_mib_max": round(max(one) / mib, 2),
        "two_path_mib_mean": round(statistics.mean(two) / mib, 2), "two_path_mib_max": round(max(two) / mib, 2),
        "all_paths_mib": round(every / mib, 2),
        "ratio_one_vs_all": round(statistics.mean(one) / every, 4),
        "ratio_two_vs_all": round(statistics.mean(two) / every, 4),
        "ms_one_path": round(timed(lambda: F.cross_entropy(net(x, path), y)), 1),
        "ms_two_path": round(timed(lambda: F.cross_entropy(net.forward_two(x, (a, b), gates), y)), 1),
        "ms_all_paths": round(timed(lambda: F.cross_entropy(net.forward_all(x), y)), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spaces", nargs="+", default=["ofa_mbv3", "mnasnet"])
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--share", nargs="+", choices=("blocks", "shared"), default=["blocks", "shared"],
                    help="a block per candidate, and/or candidates of one op sharing convolutions")
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".csv")))
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = [measure(s, args.resolution, args.batch, args.samples, mode == "shared")
            for s in args.spaces for mode in args.share]
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))
    for r in rows:
        verdict = "PASS" if r["ratio_one_vs_all"] <= 1 / 3 else "FAIL"
        print(f"{r['space']} ({'shared' if r['share_weights'] else 'blocks'}): binarized step keeps {r['ratio_one_vs_all']:.1%} of the all-paths activations "
              f"(two-path arch step {r['ratio_two_vs_all']:.1%}); goal <= 33.3%: {verdict}")
    write_csv(rows, args.out, cols)


if __name__ == "__main__":
    main()
