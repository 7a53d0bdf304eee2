"""Strategies compared at equal budget: hypervolume of (accuracy, latency) per strategy.

    python experiments/benchmarks/search_compare.py [--trials 200] [--seeds 5] [--table T.csv]
        [--out experiments/benchmarks/search_compare.csv]

Objective: the synthetic evaluator (a known optimum; `nas.evaluators.SyntheticEvaluator`), so
this measures the search strategies, not a supernet. Latency: the given table, else the MACs
proxy (printed). Single-objective strategies maximize MnasNet's soft reward with T = the median
latency of random archs; NSGA-II optimizes (accuracy, latency). Hypervolume uses one reference
point for all runs (the synthetic floor accuracy, the largest arch's latency). Prints a table
(mean ± std over seeds, wins over random on the same seed), writes one CSV row per run.
For the real experiment (supernet accuracy, measured table) use
``nas search --config experiments/compare_strategies.yaml``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import nas
from nas.evaluators import MacsProxy, SyntheticEvaluator, TableLatency
from nas.experiment import hypervolume
from nas.strategies import Objective, make_strategy

from _results import write_csv

CONFIGS = {"random": {}, "evolution": {"population": 25}, "aging": {"population": 25, "sample_size": 8},
           "rl": {"batch": 5, "lr": 0.02}, "tpe": {"n_startup_trials": 10}, "nsga2": {"population": 20}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--space", default="ofa_mbv3")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--width-mult", type=float, default=None)
    ap.add_argument("--table", default=None)
    ap.add_argument("--strategies", nargs="*", default=list(CONFIGS))
    ap.add_argument("--out", default="experiments/benchmarks/search_compare.csv")
    args = ap.parse_args()

    space = nas.load_space(args.space, resolutions=[args.resolution], num_classes=10, in_channels=1,
                           width_mult=args.width_mult)
    if args.table:
        from nas.latency import LatencyTable

        source = TableLatency(LatencyTable.load(args.table), space, name=Path(args.table).stem)
    else:
        source = MacsProxy(space)
    evaluator = SyntheticEvaluator(space, [source], seed=1000)
    rng = np.random.default_rng(0)
    target = float(np.median(source.predict_many([space.sample(rng) for _ in range(500)])))
    ref_lat = float(source.predict_many([space.preset("ofa_max", args.resolution)])[0]) if "ofa_max" in space.preset_names \
        else float(np.max(source.predict_many([space.sample(rng) for _ in range(2000)])))
    objective = Objective(table=source.name, target_ms=target, budget_ms=float("inf"), reward="soft")
    rows = []
    for seed in range(args.seeds):
        for name in args.strategies:
            strategy = make_strategy(name, space, CONFIGS[name], seed=seed, objective=objective)
            start = time.perf_counter()
            acc, lat = [], []
            for _ in range(args.trials):
                arch = strategy.ask()
                result = evaluator.evaluate(arch)
                strategy.tell(arch, result)
                acc.append(result.accuracy)
                lat.append(result.latency())
            acc_a, lat_a = np.array(acc), np.array(lat)
            rows.append({"strategy": name, "seed": seed, "trials": args.trials, "latency": source.name,
                         "hypervolume": hypervolume(acc_a, lat_a, evaluator.low, ref_lat),
                         "best_reward": float(max(objective.reward_of(a, t) for a, t in zip(acc, lat))),
                         "best_accuracy": float(acc_a.max()), "seconds": time.perf_counter() - start})
            print(f"seed {seed} {name:10s} HV {rows[-1]['hypervolume']:.4f}  best reward "
                  f"{rows[-1]['best_reward']:.4f}  ({rows[-1]['seconds']:.1f} s)", flush=True)
    print(f"\n{args.trials} trials, {args.seeds} seeds, {space.name} r{args.resolution}, latency {source.name}, "
          f"reward target {target:.3f} ms, HV reference (acc {evaluator.low}, {ref_lat:.3f} ms)")
    print(f"{'strategy':10s} {'hypervolume':>18s} {'best reward':>18s} {'HV wins vs random':>18s}")
    base = {r["seed"]: r for r in rows if r["strategy"] == "random"}
    for name in args.strategies:
        mine = [r for r in rows if r["strategy"] == name]
        hv = np.array([r["hypervolume"] for r in mine])
        rw = np.array([r["best_reward"] for r in mine])
        wins = sum(r["hypervolume"] > base[r["seed"]]["hypervolume"] for r in mine) if base else 0
        print(f"{name:10s} {hv.mean():10.4f} ± {hv.std():.4f} {rw.mean():10.4f} ± {rw.std():.4f} "
              f"{wins:>12d}/{len(mine)}")
    write_csv(rows, args.out)


if __name__ == "__main__":
    main()
