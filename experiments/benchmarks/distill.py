"""Distillation against plain fine-tuning of one extracted subnet: same steps, paired seeds.

    python experiments/benchmarks/distill.py --arch runs/quickstart/best.json
        [--checkpoint experiments/weights/supernet_fmnist.pt] [--steps 600] [--seeds 0 1 2]
        [--kd-weight 1.0] [--temperature 1.0] [--out experiments/benchmarks/distill.csv]

For each seed, the subnet is extracted from the supernet, its batch norm recalibrated on 8 training
batches, and fine-tuned twice with `nas.supernet.finetune` on the same batches (the seed fixes data
order and augmentation): plainly, and with soft targets of the supernet's largest subnet (BN
recalibrated) added at --kd-weight, temperature --temperature (as `nas finetune --distill`). Top-1 on
the 6,000-image validation split and the 10,000-image test split (never used to choose anything here).
Reports the per-seed test difference (distilled − plain), its mean and sample std, and the mean
validation difference (choose settings such as --temperature on the validation figure of seeds you do
not report, with another --out). Resumable: runs already in --out are kept. Prints a table, writes a CSV.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _results import previous_rows, write_csv

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    import torch

    from nas.cli._model import read_arch
    from nas.supernet import (FinetuneConfig, accuracy, checkpoint_config, checkpoint_evaluator, config_loaders,
                              extract, finetune, largest_arch, recalibrate_bn, recalibrated)

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", required=True, help="arch JSON (e.g. the quickstart's best.json)")
    parser.add_argument("--checkpoint", default=str(ROOT / "experiments/weights/supernet_fmnist.pt"))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--kd-weight", type=float, default=1.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "experiments/benchmarks/distill.csv"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    arch = read_arch(args.arch)
    supernet, evaluator = checkpoint_evaluator(args.checkpoint)
    loaders = config_loaders(checkpoint_config(args.checkpoint), max(supernet.space.resolutions))
    teacher = recalibrated(supernet, largest_arch(supernet.space), evaluator.calibration)
    rows = previous_rows(args.out, {})

    def key(arch_short: str, mode: str, seed: int, steps: int, kd: float, t: float) -> tuple:
        return (arch_short, mode, int(seed), int(steps)) + ((float(kd), float(t)) if mode == "distill" else ())

    done = {key(r["arch"], r["mode"], r["seed"], r["steps"], r["kd_weight"], r["temperature"]) for r in rows}
    for seed in args.seeds:
        for mode in ("plain", "distill"):
            if key(arch.short(), mode, seed, args.steps, args.kd_weight, args.temperature) in done:
                continue
            started = time.perf_counter()
            net = recalibrate_bn(extract(supernet, arch).to(memory_format=torch.channels_last),
                                 evaluator.calibration, arch.resolution)
            config = FinetuneConfig(steps=args.steps, lr=args.lr, seed=seed,
                                    kd_weight=args.kd_weight if mode == "distill" else 0.0,
                                    kd_temperature=args.temperature)
            finetune(net, loaders.train, config, resolution=arch.resolution,
                     teacher=teacher if mode == "distill" else None)
            val, test = (accuracy(net, split, arch.resolution) for split in (evaluator.validation, loaders.test))
            rows.append({"arch": arch.short(), "mode": mode, "seed": seed, "steps": args.steps, "lr": args.lr,
                         "kd_weight": config.kd_weight, "temperature": args.temperature if mode == "distill" else 0.0,
                         "val_top1": round(val, 5),
                         "test_top1": round(test, 5), "seconds": round(time.perf_counter() - started, 1)})
            print(f"seed {seed} {mode:8s} val {val:.4f} test {test:.4f} ({rows[-1]['seconds']} s)", flush=True)
            write_csv(rows, args.out)  # after every run: an interrupted benchmark keeps what it measured
    mine = [r for r in rows if r["arch"] == arch.short() and int(r["steps"]) == args.steps and
            (r["mode"] == "plain" or (float(r["kd_weight"]), float(r["temperature"])) == (args.kd_weight, args.temperature))]
    by = {(r["mode"], int(r["seed"])): float(r["test_top1"]) for r in mine}
    val = {(r["mode"], int(r["seed"])): float(r["val_top1"]) for r in mine}
    seeds = [s for s in args.seeds if ("plain", s) in by and ("distill", s) in by]
    diffs = np.array([by["distill", s] - by["plain", s] for s in seeds]) * 100
    print(f"\n{'seed':>4} {'plain test':>10} {'distilled':>10} {'diff (pt)':>9}")
    for s, d in zip(seeds, diffs):
        print(f"{s:4d} {by['plain', s]:10.4f} {by['distill', s]:10.4f} {d:+9.2f}")
    if len(diffs):
        spread = f" ± {diffs.std(ddof=1):.2f} (sample std over {len(diffs)} seeds)" if len(diffs) > 1 else ""
        val_diff = np.mean([val["distill", s] - val["plain", s] for s in seeds]) * 100
        print(f"distilled − plain (kd {args.kd_weight}, T {args.temperature}): validation {val_diff:+.2f} points; "
              f"on the 10,000 test images {diffs.mean():+.2f} points{spread}; goal ≥ +0.3")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
