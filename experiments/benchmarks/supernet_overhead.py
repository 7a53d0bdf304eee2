"""Supernet overhead: one training step of `supernet(x, arch)` vs the same step of `extract(arch)`.

    flock /tmp/hwnas-cpu.lock python experiments/benchmarks/supernet_overhead.py [--archs 10] [--reps 5]
        [--batch 128] [--resolution 32] [--width-mult 0.5] [--out experiments/benchmarks/supernet_overhead.csv]

A step is zero_grad, forward, cross-entropy, backward and an SGD step (momentum), channels-last,
one thread, on random images. For each arch (the largest, the smallest and --archs random ones) the
two steps alternate for --reps timed repetitions after one warm-up each; the table shows the median
times and their ratio. Target: supernet / static <= 1.5. Prints a table, writes a CSV.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import nas
from nas.supernet import Supernet, extract, largest_arch, smallest_arch

from _results import write_csv

ROOT = Path(__file__).resolve().parents[2]


def step_timer(model: torch.nn.Module, forward, x: torch.Tensor, y: torch.Tensor):  # noqa: ANN001, ANN201
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> float:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(forward(x), y).backward()
        optimizer.step()
        return time.perf_counter() - start
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", type=int, default=10, help="random archs besides the largest and smallest")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--width-mult", type=float, default=0.5)
    ap.add_argument("--num-classes", type=int, default=10)
    ap.add_argument("--in-channels", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "experiments/benchmarks/supernet_overhead.csv"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    space = nas.load_space("ofa_mbv3", resolutions=[args.resolution], num_classes=args.num_classes,
                           in_channels=args.in_channels, width_mult=args.width_mult)
    torch.manual_seed(args.seed)
    supernet = Supernet(space).train().to(memory_format=torch.channels_last)
    rng = np.random.default_rng(args.seed)
    archs = [largest_arch(space), smallest_arch(space)] + [space.sample(rng) for _ in range(args.archs)]
    x = torch.randn(args.batch, args.in_channels, args.resolution, args.resolution).contiguous(
        memory_format=torch.channels_last)
    y = torch.randint(0, args.num_classes, (args.batch,))
    print(f"ofa_mbv3 width {args.width_mult} at {args.resolution}px, batch {args.batch}, {args.threads} thread(s)")
    print(f"{'arch':>5} {'MMACs':>7} {'supernet ms':>12} {'static ms':>10} {'ratio':>6}")
    rows = []
    for i, arch in enumerate(archs):
        static = extract(supernet, arch).train().to(memory_format=torch.channels_last)
        steps = {"supernet": step_timer(supernet, lambda v: supernet(v, arch), x, y),
                 "static": step_timer(static, static, x, y)}
        for step in steps.values():
            step()  # warm-up
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.reps):
            for name, step in steps.items():
                times[name].append(step())
        sup, sta = (float(np.median(times[n])) * 1e3 for n in ("supernet", "static"))
        label = {0: "max", 1: "min"}.get(i, f"r{i - 2}")
        row = {"arch": label, "mmacs": nas.count_macs(arch, args.num_classes, args.in_channels) / 1e6,
               "supernet_step_ms": sup, "static_step_ms": sta, "ratio": sup / sta, "spec": arch.short()}
        rows.append(row)
        print(f"{label:>5} {row['mmacs']:7.2f} {sup:12.1f} {sta:10.1f} {sup / sta:6.2f}", flush=True)
    ratios = np.array([r["ratio"] for r in rows])
    total = sum(r["supernet_step_ms"] for r in rows) / sum(r["static_step_ms"] for r in rows)
    print(f"median ratio {np.median(ratios):.3f}, max {ratios.max():.3f}, total-time ratio {total:.3f} "
          f"(target <= 1.5: {'PASS' if total <= 1.5 else 'FAIL'})")
    write_csv(rows, args.out)


if __name__ == "__main__":
    main()
