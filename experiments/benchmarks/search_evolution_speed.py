"""Evolution speed: G generations × population P with a latency table and an accuracy predictor.

    python experiments/benchmarks/search_evolution_speed.py [--generations 500] [--population 100]
        [--table latency_tables/X.csv] [--out experiments/benchmarks/search_evolution_speed.csv]

Latency: the given table (vectorized `LatencyTable.predict_many` over option-index rows), or the
MACs proxy when no table is given (printed). Accuracy: an MLP of the OFA accuracy predictor's
shape (one-hot arch encoding -> 400 -> 400 -> 400 -> 1), batch-evaluated per generation; its
weights are random here (speed only), so the accuracies are meaningless. Prints a table, writes
a CSV. Run under the CPU lock: ``flock /tmp/hwnas-cpu.lock python ...``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import nas
from nas.evaluators import MacsProxy, PredictorEvaluator, TableLatency
from nas import Codec
from nas.strategies import Objective, make_strategy

from _results import write_csv


def mlp_predictor(space: nas.SearchSpace, seed: int = 0):  # noqa: ANN201
    codec = Codec.of(space)
    torch.manual_seed(seed)
    width = int(codec.sizes.sum())
    net = torch.nn.Sequential(torch.nn.Linear(width, 400), torch.nn.ReLU(), torch.nn.Linear(400, 400), torch.nn.ReLU(),
                              torch.nn.Linear(400, 400), torch.nn.ReLU(), torch.nn.Linear(400, 1)).eval()

    def predict(archs):  # noqa: ANN001, ANN202
        with torch.no_grad():
            x = torch.from_numpy(codec.one_hot(codec.encode_many(archs)))
            return torch.sigmoid(net(x)).squeeze(1).numpy()
    return predict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generations", type=int, default=500)
    ap.add_argument("--population", type=int, default=100)
    ap.add_argument("--mode", default="evolution", choices=["evolution", "aging"])
    ap.add_argument("--space", default="ofa_mbv3")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--table", default=None)
    ap.add_argument("--budget-quantile", type=float, default=0.5, help="latency budget at this quantile of random archs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="experiments/benchmarks/search_evolution_speed.csv")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    space = nas.load_space(args.space, resolutions=[args.resolution], num_classes=10, in_channels=1)
    if args.table:
        from nas.latency import LatencyTable

        source = TableLatency(LatencyTable.load(args.table), space, name=Path(args.table).stem)
    else:
        source = MacsProxy(space)
    rng = np.random.default_rng(0)
    budget = float(np.quantile(source.predict_many([space.sample(rng) for _ in range(500)]), args.budget_quantile))
    evaluator = PredictorEvaluator(space, mlp_predictor(space), [source])
    strategy = make_strategy(args.mode, space, {"population": args.population}, seed=0,
                             objective=Objective(table=source.name, target_ms=budget, reward="accuracy"),
                             latency_fn=source.predict_rows)
    evaluated = 0
    start = time.perf_counter()
    gen = 0
    while gen < args.generations:
        archs = strategy.ask_generation()
        strategy.tell_many(archs, evaluator.evaluate_many(archs))
        evaluated += len(archs)
        gen = strategy.generation
    seconds = time.perf_counter() - start
    best = strategy.best()
    row = {"space": args.space, "resolution": args.resolution, "mode": args.mode, "latency": source.name,
           "budget_ms": round(budget, 4), "generations": gen, "population": args.population,
           "evaluated": evaluated, "seconds": round(seconds, 2), "archs_per_s": round(evaluated / seconds),
           "threads": args.threads, "best_predicted_accuracy": round(float(best[1]), 4)}
    width = max(len(k) for k in row)
    for k, v in row.items():
        print(f"{k:{width}s}  {v}")
    write_csv([row], args.out)


if __name__ == "__main__":
    main()
