"""ProxylessNAS weight training: does single-path training learn when paths vary?

    python experiments/benchmarks/proxyless_weight_training.py [--space mnasnet] [--pools 1 2 8 32 0]
        [--pin none skip kernel] [--share-weights] [--steps 150] [--weight-lr 0.01] [--weight-grad-clip 0] [--out experiments/benchmarks/proxyless_weight_training.csv]

Weight steps only (no architecture steps, α uniform), exactly as `ProxylessSearch.weight_step` runs
them, on the real Fashion-MNIST at 32×32, batch 32. Each weight step draws its path from a pool of
`--pools` paths fixed at the start (drawn from the uniform α; 0: a fresh path every step, what the
search does). Prints the mean training cross-entropy per window of 25 steps (chance: ln 10 = 2.30) and
writes a CSV. Three `--pin` presets: "none" searches every choice; "skip" every choice but the
residuals, held on (`ProxylessConfig.pin_skip`, the search's default); "kernel" pins every choice but
the stage kernels (op mb6, no SE, skip on, largest depth), so paths differ only in kernel sizes.
`--share-weights`: the candidates of one op share their convolutions.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from nas.data import load_dataset
from nas.latency import LatencyTable, space_of
from nas.proxyless import ProxylessConfig
from nas.proxyless._search import ProxylessSearch, _cycle, _loaders, build_network

from _results import previous_rows, write_csv

WINDOW = 25


def kernel_only_pins(space) -> dict[str, object]:  # noqa: ANN001
    pins: dict[str, object] = {}
    for i, _ in enumerate(space.stages):
        for attr, value in (("op", "mb6"), ("se", 0.0), ("skip", True)):
            if f"s{i}.{attr}" in space.dims:
                pins[f"s{i}.{attr}"] = value
        if f"s{i}.depth" in space.dims:
            pins[f"s{i}.depth"] = space.dims[f"s{i}.depth"][-1]
    return pins


def train(space, table, data, pool: int, args: argparse.Namespace, pins: dict,  # noqa: ANN001
          pin_skip: bool = False) -> list[float]:
    config = ProxylessConfig(target_ms=1.0, weight_lr=args.weight_lr, weight_grad_clip=args.weight_grad_clip or None,
                             batch_size=32, pins=pins, share_weights=args.share_weights, pin_skip=pin_skip)
    net = build_network(space, config, args.seed)
    search = ProxylessSearch(net, table, config, args.seed)
    train_loader, _ = _loaders(data, config, net.resolution, args.seed)
    batches = _cycle(train_loader)
    if pool:
        paths = [net.sample_path(search.generator) for _ in range(pool)]
        rng = np.random.default_rng(args.seed)
        net.sample_path = lambda generator: paths[int(rng.integers(pool))]  # type: ignore[method-assign]
    losses = []
    for _ in range(args.steps):
        x, y = next(batches)
        losses.append(search.weight_step(x, y))
    return [float(np.mean(losses[i:i + WINDOW])) for i in range(0, args.steps, WINDOW)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="mnasnet")
    ap.add_argument("--pools", type=int, nargs="+", default=[1, 2, 8, 32, 0])
    ap.add_argument("--pin", choices=("none", "skip", "kernel"), nargs="+", default=["none", "kernel"])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--weight-lr", type=float, default=0.01)
    ap.add_argument("--weight-grad-clip", type=float, default=0.0, help="0: no clipping")
    ap.add_argument("--share-weights", action="store_true",
                    help="candidates of one op share their convolutions (ProxylessConfig.share_weights)")
    ap.add_argument("--append", action="store_true", help="add the rows to an existing --out CSV")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".csv")))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    table = LatencyTable.load(f"latency_tables/x86-2core_onnxruntime_t1_{args.space}_r32.csv")
    space = space_of(table)
    data = load_dataset("fashion_mnist", val_fraction=0.1, seed=0)
    rows = []
    print(f"{'pins':>6} {'pool':>5}  train CE per {WINDOW} steps (chance 2.30)")
    for pin in args.pin:
        pins = kernel_only_pins(space) if pin == "kernel" else {}
        for pool in args.pools:
            t0 = time.perf_counter()
            curve = train(space, table, data, pool, args, pins, pin_skip=pin == "skip")
            label = str(pool) if pool else "all"
            print(f"{pin:>6} {label:>5}  " + " ".join(f"{v:.3f}" for v in curve) + f"  ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
            rows.append({"space": args.space, "share_weights": args.share_weights, "pins": pin, "pool": label,
                         "steps": args.steps,
                         "weight_lr": args.weight_lr, "weight_grad_clip": args.weight_grad_clip, "seed": args.seed,
                         **{f"ce_{(k + 1) * WINDOW}": round(v, 3) for k, v in enumerate(curve)}})
    out = Path(args.out)
    if args.append:  # rows from before the option: a block per candidate
        rows = previous_rows(out, {"share_weights": "False"}) + rows
    write_csv(rows, out, fieldnames=list(rows[-1]))


if __name__ == "__main__":
    main()
