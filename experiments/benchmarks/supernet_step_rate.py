"""Supernet training step rate: the steps of `nas supernet train`, per phase, threads and variant.

    flock /tmp/hwnas-cpu.lock python experiments/benchmarks/supernet_step_rate.py [--threads 1 2]
        [--variants crop full-taps] [--steps 10] [--rounds 3] [--phases full expand] [--append]
        [--config experiments/supernet_fmnist.yaml] [--out experiments/benchmarks/supernet_step_rate.csv]

Each step is what training runs (`nas.supernet._step.sandwich_backward` on a real augmented
Fashion-MNIST batch of the config, then the optimizer step), on the phase's sandwich of subnets.
Variants: ``crop`` is the code as it is (depthwise kernels cropped to the taps that reach the map);
``full-taps`` runs every depthwise tap, as before the crop. Variants and thread counts alternate
within each round, so a machine whose load drifts slows them alike; the table gives medians of
wall and CPU time per step, and the training time they imply (each phase's steps at its median).
Environment that changes the kernels or threading (OMP_WAIT_POLICY, GOMP_SPINCOUNT,
ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY) is recorded in the ``env`` column: rerun the script under
``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`` with ``--append`` to see an AVX2 machine's paths.
"""

from __future__ import annotations

import argparse
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

import nas.supernet._ops as ops
from nas.supernet._step import lr_at, sandwich, sandwich_backward
from nas.supernet._supernet import Supernet
from nas.supernet._train import (TrainConfig, _load_splits, _make_loaders, _make_optimizer, build_space,
                                 phase_space)

from _results import previous_rows, write_csv

ROOT = Path(__file__).resolve().parents[2]
ENV_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


@contextmanager
def variant(name: str) -> Iterator[None]:
    """``full-taps`` swaps the depthwise crop for the identity while it is active."""
    crop = ops.reachable_taps
    if name == "full-taps":
        ops.reachable_taps = lambda weight, height, width: weight
    try:
        yield
    finally:
        ops.reachable_taps = crop


def env_label() -> str:
    parts = [f"{k}={os.environ[k]}" for k in ENV_KEYS if k in os.environ]
    return " ".join(parts) or "default"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "experiments/supernet_fmnist.yaml"))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--variants", nargs="+", choices=("crop", "full-taps"), default=["crop", "full-taps"])
    ap.add_argument("--phases", nargs="+", default=None, help="phase names (default: every phase)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant, threads and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--append", action="store_true", help="keep the rows already in --out")
    ap.add_argument("--out", default=str(ROOT / "experiments/benchmarks/supernet_step_rate.csv"))
    args = ap.parse_args()

    config = TrainConfig.from_file(args.config)
    splits = _load_splits(config)
    space = build_space(config, splits.train.num_classes, splits.train.channels)
    batches = iter(_make_loaders(config, splits, max(space.resolutions)).train)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    torch.manual_seed(config.seed)
    supernet = Supernet(space, config.dropout).to(memory_format=memory_format).train()
    optimizer = _make_optimizer(supernet, config.optimizer, config.phases[0].lr)
    sw, rng = config.sandwich, np.random.default_rng(config.seed)
    phases = [p for p in config.phases if args.phases is None or p.name in args.phases]

    def step(phase, pspace) -> tuple[float, float]:  # noqa: ANN001
        wall, cpu = time.perf_counter(), time.process_time()
        x, y = next(batches)
        x = x.contiguous(memory_format=memory_format)
        archs = sandwich(pspace, rng, sw["num_random"] if phase.num_random is None else phase.num_random)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(phase, phase.steps // 2)
        optimizer.zero_grad(set_to_none=True)
        sandwich_backward(supernet, x, y, archs, label_smoothing=config.optimizer["label_smoothing"],
                          kd_weight=sw["kd_weight"], kd_temperature=sw["kd_temperature"])
        optimizer.step()
        return time.perf_counter() - wall, time.process_time() - cpu

    times: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
    for phase in phases:
        pspace = phase_space(space, phase)
        for name in args.variants:
            for threads in args.threads:
                torch.set_num_threads(threads)
                with variant(name):
                    step(phase, pspace)  # warm-up: oneDNN primitives for this phase's shapes
        for _ in range(args.rounds):
            for name in args.variants:
                for threads in args.threads:
                    torch.set_num_threads(threads)
                    with variant(name):
                        times.setdefault((phase.name, name, threads), []).extend(
                            step(phase, pspace) for _ in range(args.steps))

    rows = previous_rows(args.out, {}) if args.append else []
    stamp, cpu_name = time.strftime("%Y-%m-%d %H:%M", time.gmtime()), torch.backends.cpu.get_cpu_capability()
    print(f"{'phase':8} {'variant':10} {'threads':>7} {'wall ms':>8} {'steps/s':>8} {'cpu ms':>8}   ({env_label()}, "
          f"torch {cpu_name}, load {os.getloadavg()[0]:.1f})")
    minutes: dict[tuple[str, int], float] = {}
    for (phase_name, name, threads), samples in times.items():
        wall = float(np.median([w for w, _ in samples]))
        cpu = float(np.median([c for _, c in samples]))
        steps = next(p.steps for p in phases if p.name == phase_name)
        minutes[(name, threads)] = minutes.get((name, threads), 0.0) + steps * wall / 60
        print(f"{phase_name:8} {name:10} {threads:7d} {wall * 1e3:8.1f} {1 / wall:8.2f} {cpu * 1e3:8.1f}")
        rows.append({"date": stamp, "env": env_label(), "cpu_capability": cpu_name, "phase": phase_name,
                     "variant": name, "threads": threads, "steps": len(samples),
                     "wall_ms_median": round(wall * 1e3, 1), "steps_per_s": round(1 / wall, 2),
                     "cpu_ms_median": round(cpu * 1e3, 1), "load_1min": round(os.getloadavg()[0], 1)})
    names = "+".join(p.name for p in phases)
    for (name, threads), total in minutes.items():
        print(f"training ({names}, {sum(p.steps for p in phases)} steps) at these medians: {name}, "
              f"{threads} thread(s): {total:.1f} min")
    write_csv(rows, args.out)


if __name__ == "__main__":
    main()
