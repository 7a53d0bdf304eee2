"""ProxylessNAS vs the evolution winner at the same latency, both trained briefly from scratch.

    python experiments/benchmarks/proxyless_retrain.py [--winner runs/quickstart/best.json]
        [--table latency_tables/x86-2core_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv] [--search-seed 0]
        [--train-seeds 0 1] [--epochs 1] [--batch 128] [--lr 0.05] [--steps 250] [--warmup 50]
        [--out experiments/benchmarks/proxyless_retrain.csv]

The quickstart space (ofa_mbv3, 28×28, width 0.5, 10 classes, 1 channel, read from the table's
metadata) and its shipped ONNX Runtime table:

1. the evolution winner: the arch the quickstart exported (``nas results runs/quickstart
   --export-best``; read only), and its calibrated predicted latency from the table;
2. ProxylessNAS on the same space and table with ``target_ms`` = that latency (real Fashion-MNIST:
   weights on the train split, α on a 10% held-out split);
3. both archs trained from scratch by `nas.evaluators.TrainEvaluator` with the same budget, data,
   seed and schedule (SGD + one-cycle, BN statistics re-estimated), once per training seed; top-1
   on the 10% validation split (6,000 images).

Prints a row per (arch, seed), the mean per arch and the gap (ProxylessNAS − evolution, points of
accuracy and % of latency); writes a CSV. One intra-op thread; run pinned to one core.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from nas import Arch
from nas.evaluators import TrainEvaluator
from nas.latency import LatencyTable, space_of
from nas.proxyless import ProxylessConfig, run_proxyless

from _results import write_csv

TABLE = "latency_tables/x86-2core_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--winner", default="runs/quickstart/best.json", help="evolution winner (arch JSON)")
    ap.add_argument("--table", default=TABLE)
    ap.add_argument("--dataset", default="fashion_mnist")
    ap.add_argument("--search-seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=250, help="ProxylessNAS iterations")
    ap.add_argument("--warmup", type=int, default=50, help="ProxylessNAS weight-only warm-up iterations")
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--epochs", type=float, default=1.0, help="training budget of each arch (epochs of the train split)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".csv")))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    winner_file = Path(args.winner)
    if not winner_file.is_file():
        raise SystemExit(f"evolution winner {args.winner!r} does not exist: run experiments/quickstart.sh "
                         "(it writes runs/quickstart/best.json) or pass --winner FILE")
    table = LatencyTable.load(args.table)
    space = space_of(table)
    text = winner_file.read_text().strip()
    first = text.splitlines()[0]
    if first.startswith("{") and first.endswith("}"):  # JSON lines: the first arch
        text = first
    winner = Arch.from_json(text, source=str(winner_file))
    space.validate(winner)
    winner_ms = float(table.predict(winner, space, calibrated=True))
    print(f"evolution winner ({winner_file}): {winner.short()}\n  predicted {winner_ms:.4f} ms", flush=True)

    config = ProxylessConfig(target_ms=winner_ms, steps=args.steps, warmup_steps=args.warmup,
                             dataset=args.dataset, log_every=max(1, args.steps // 10))
    result = run_proxyless(space, table, args.dataset, config, seed=args.search_seed, progress=False)
    derived, derived_ms = result.derived[0], float(result.predicted_ms[0])
    last = result.history[-1]
    print(f"ProxylessNAS (target {winner_ms:.4f} ms, {result.seconds:.0f} s): {derived.short()}\n"
          f"  predicted {derived_ms:.4f} ms ({100 * (derived_ms / winner_ms - 1):+.1f}%), "
          f"E[LAT] {result.expected_ms:.4f} ms, entropy {last['entropy']:.3f}", flush=True)

    archs = {"evolution": (winner, winner_ms), "proxyless": (derived, derived_ms)}
    rows: list[dict[str, object]] = []
    for seed in args.train_seeds:
        evaluator = TrainEvaluator(space, dataset=args.dataset, epochs=args.epochs, batch_size=args.batch,
                                   lr=args.lr, seed=seed)
        for name, (arch, ms) in archs.items():
            t0 = time.perf_counter()
            res = evaluator.evaluate(arch)
            rows.append({"arch": name, "train_seed": seed, "predicted_ms": round(ms, 4),
                         "val_acc": round(res.accuracy, 4), "train_loss": round(res.extra["train_loss"], 4),
                         "train_steps": res.extra["train_steps"], "train_s": round(time.perf_counter() - t0, 1),
                         "params": res.params, "macs": res.macs, "target_ms": round(winner_ms, 4),
                         "search_seed": args.search_seed, "search_s": round(result.seconds, 1),
                         "epochs": args.epochs, "batch": args.batch, "lr": args.lr,
                         "table": Path(args.table).name, "arch_short": arch.short(), "arch_json": arch.to_json()})
            print({k: v for k, v in rows[-1].items() if k not in ("arch_json", "arch_short")}, flush=True)

    cols = ["arch", "train_seed", "predicted_ms", "val_acc", "train_loss", "train_steps", "train_s", "params", "macs"]
    print("\n" + " | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))
    mean = {n: statistics.mean(float(r["val_acc"]) for r in rows if r["arch"] == n) for n in archs}
    print(f"mean val top-1 over {len(args.train_seeds)} training seed(s): evolution {mean['evolution']:.4f}, "
          f"proxyless {mean['proxyless']:.4f}; gap (proxyless - evolution) "
          f"{100 * (mean['proxyless'] - mean['evolution']):+.2f} points at "
          f"{100 * (derived_ms / winner_ms - 1):+.1f}% predicted latency")
    for seed in args.train_seeds:
        acc = {r["arch"]: float(r["val_acc"]) for r in rows if r["train_seed"] == seed}
        print(f"  seed {seed}: gap {100 * (acc['proxyless'] - acc['evolution']):+.2f} points")
    write_csv(rows, args.out)


if __name__ == "__main__":
    main()
