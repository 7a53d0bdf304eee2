"""Supernet learning: accuracy of the largest/smallest subnets, and whether shared-weight accuracy
ranks archs like brief fine-tuning from extracted weights does.

    # 1. train (resumable; run again after an interruption or in chunks of --steps)
    flock /tmp/hwnas-cpu.lock nas supernet train --config experiments/supernet_fmnist.yaml --threads 1
    # 2. measure (resumable: finished archs are cached in --cache; --max-minutes bounds one run)
    flock /tmp/hwnas-cpu.lock python experiments/benchmarks/supernet_learning.py \\
        --checkpoint runs/supernet_fmnist/checkpoint.pt [--archs 12] [--finetune-steps 100] [--max-minutes 7.5]

Archs: --archs archs from the smallest to the largest, evenly spaced in MACs (--spread macs, the
default) or at quantiles of the MACs of uniform random archs (--spread quantile, which crowds them
where archs differ least). For each: accuracy with shared weights (BN recalibrated on 8 training batches) and after
fine-tuning the extracted network for --finetune-steps SGD steps (batch and augmentation of the
training config, lr 0.01 cosine), both on the validation split and on the official test split (never
used for training or search); "pooled" is the accuracy over both (16,000 Fashion-MNIST images: the
subnets differ by about a point, so 6,000 validation images alone rank them mostly by noise). Reports
Kendall tau between shared and fine-tuned accuracy (target >= 0.5) per split and pooled, and the
largest/smallest subnets' validation accuracy (targets 0.88 / 0.82). Prints a table, writes a CSV.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import nas
from nas.supernet import (
    SharedWeightEvaluator,
    accuracy,
    checkpoint_config,
    config_loaders,
    extract,
    kendall_tau,
    largest_arch,
    load_checkpoint,
    make_evaluator,
    smallest_arch,
    supernet_from_checkpoint,
)

from _results import write_csv

ROOT = Path(__file__).resolve().parents[2]


def spread_archs(space: nas.SearchSpace, n: int, seed: int, how: str = "macs") -> list[nas.Arch]:
    """`n` archs from smallest to largest, the two extremes included.

    "macs": MACs evenly spaced between the extremes (a pool of 2000 archs sampled with a size bias
    drawn per arch, so every size is represented); "quantile": quantiles of the MACs of 500 uniform
    random archs, which crowd in the middle of the range where archs differ least in accuracy."""
    rng = np.random.default_rng(seed)
    macs = lambda a: nas.count_macs(a, space.num_classes, space.in_channels)  # noqa: E731
    ends = [largest_arch(space), smallest_arch(space)]
    if how == "quantile":
        pool = sorted(dict.fromkeys(space.sample(rng) for _ in range(500)), key=macs)
        picks = [pool[int(round(q * (len(pool) - 1)))] for q in np.linspace(0, 1, max(n - 2, 1))]
        return list(dict.fromkeys(ends + picks))[:n]
    pool_set: set[nas.Arch] = set()
    for _ in range(2000):  # each choice's option index ~ Binomial(options - 1, bias), bias ~ U(0, 1)
        bias = rng.uniform()
        choices = {d: opts[rng.binomial(len(opts) - 1, bias)] for d, opts in space.dims.items()}
        pool_set.add(space.decode(choices))
    pool = sorted(pool_set - set(ends), key=macs)
    pool_macs = np.array([macs(a) for a in pool])
    picks: list[nas.Arch] = []
    for target in np.linspace(macs(ends[1]), macs(ends[0]), n)[1:-1]:
        order = np.argsort(np.abs(pool_macs - target))
        picks.append(next(pool[i] for i in order if pool[i] not in picks))
    return ends + picks


def finetune(net: torch.nn.Module, train_loader, steps: int, lr: float, seed: int) -> torch.nn.Module:  # noqa: ANN001
    net = net.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=3e-5)
    train_loader.generator.manual_seed(seed)
    batches = iter(train_loader)
    for step in range(steps):
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(train_loader)
            x, y = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / steps))
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y, label_smoothing=0.1).backward()
        optimizer.step()
    return net.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "runs/supernet_fmnist/checkpoint.pt"))
    ap.add_argument("--archs", type=int, default=12)
    ap.add_argument("--spread", choices=("macs", "quantile"), default="macs",
                    help="how archs are picked between the largest and smallest (see spread_archs)")
    ap.add_argument("--finetune-steps", type=int, default=100)
    ap.add_argument("--finetune-lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-minutes", type=float, default=7.5, help="stop (resumably) after this long")
    ap.add_argument("--cache", default=None, help="JSON lines of finished archs (default: next to the checkpoint)")
    ap.add_argument("--out", default=str(ROOT / "experiments/benchmarks/supernet_learning.csv"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    payload = load_checkpoint(args.checkpoint)
    config = checkpoint_config(args.checkpoint)
    print(f"checkpoint {args.checkpoint}: step {payload['step']}/{config.total_steps}, "
          f"{payload.get('train_seconds', float('nan')) / 60:.1f} min of training")
    for row in payload["history"]:
        print(f"  after phase {row['phase']:8s} {row['arch']} subnet val acc {row['val_acc']:.4f}")
    supernet = supernet_from_checkpoint(args.checkpoint)
    space = supernet.space
    loaders = config_loaders(config, max(space.resolutions))
    evaluator = make_evaluator(supernet, loaders, config)
    test_evaluator = SharedWeightEvaluator(supernet, evaluator.calibration, loaders.test)
    n_val, n_test = (sum(len(y) for _, y in loader) for loader in (evaluator.validation, loaders.test))
    cache = Path(args.cache) if args.cache else Path(args.checkpoint).with_name("learning_benchmark.jsonl")
    done = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                if "finetuned_test" in row:  # rows of an older version lack the test split
                    done[nas.Arch.from_dict(row["arch"])] = row
    archs = spread_archs(space, args.archs, args.seed, args.spread)
    print(f"{'arch':>5} {'MMACs':>7} {'shared val':>10} {'tuned val':>10} {'shared test':>11} {'tuned test':>10} "
          f"{'shared pool':>11} {'tuned pool':>10}")
    rows = []
    for i, arch in enumerate(archs):
        label = {0: "max", 1: "min"}.get(i, f"a{i}")
        if arch not in done:
            if time.perf_counter() - started > args.max_minutes * 60:
                print(f"stopping after {args.max_minutes} min; rerun to continue ({len(rows)} of {len(archs)} done)")
                break
            shared, shared_test = evaluator(arch), test_evaluator(arch)
            net = finetune(extract(supernet, arch), loaders.train, args.finetune_steps, args.finetune_lr,
                           args.seed + i)
            tuned, tuned_test = (accuracy(net, loader, arch.resolution) for loader in (evaluator.validation, loaders.test))
            done[arch] = {"arch": arch.to_dict(), "shared_acc": shared, "finetuned_acc": tuned,
                          "shared_test": shared_test, "finetuned_test": tuned_test}
            with open(cache, "a") as f:
                f.write(json.dumps(done[arch]) + "\n")
        row = done[arch]
        pool = {k: (n_val * row[f"{k}_acc"] + n_test * row[f"{k}_test"]) / (n_val + n_test)
                for k in ("shared", "finetuned")}
        rows.append({"arch": label, "mmacs": nas.count_macs(arch, space.num_classes, space.in_channels) / 1e6,
                     "shared_acc": row["shared_acc"], "finetuned_acc": row["finetuned_acc"],
                     "shared_test": row["shared_test"], "finetuned_test": row["finetuned_test"],
                     "shared_pooled": pool["shared"], "finetuned_pooled": pool["finetuned"], "spec": arch.short()})
        print(f"{label:>5} {rows[-1]['mmacs']:7.2f} {row['shared_acc']:10.4f} {row['finetuned_acc']:10.4f} "
              f"{row['shared_test']:11.4f} {row['finetuned_test']:10.4f} {pool['shared']:11.4f} "
              f"{pool['finetuned']:10.4f}", flush=True)
    if len(rows) == len(archs):
        print(f"largest subnet: {rows[0]['shared_acc']:.4f} val acc (target 0.88), smallest: "
              f"{rows[1]['shared_acc']:.4f} (target 0.82) with shared weights")
        for split, (a, b), n in (("val", ("shared_acc", "finetuned_acc"), n_val),
                                 ("test", ("shared_test", "finetuned_test"), n_test),
                                 ("pooled", ("shared_pooled", "finetuned_pooled"), n_val + n_test)):
            tau = kendall_tau([r[a] for r in rows], [r[b] for r in rows])
            print(f"Kendall tau shared vs fine-tuned ({args.finetune_steps} steps) over {len(rows)} archs, "
                  f"{split} ({n} images): {tau:.3f} (target >= 0.5)")
        write_csv(rows, args.out)


if __name__ == "__main__":
    main()
