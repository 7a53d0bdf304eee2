"""NSGA-II with one latency objective per device against random search, in hypervolume. One command:

    python experiments/benchmarks/multi_device_hv.py [--trials 150] [--seeds 0 1 2]
        [--evaluator synthetic|supernet] [--out experiments/benchmarks/multi_device_hv.csv]

Two devices of the quickstart space (the shipped ONNX Runtime and TFLite tables of ofa_mbv3 r28 w0.5),
goal joint with a budget per device at the 30% quantile; each seed runs NSGA-II (accuracy + both latencies)
and random search for `--trials` trials through the experiment runner. Hypervolume of (accuracy up, both
latencies down) over each run's trials, with one reference point per seed (the worst accuracy and
latencies of both runs), computed by Optuna's exact 3-D hypervolume. Accuracy: the synthetic stand-in
(seconds) or the quickstart supernet's shared weights (500 validation images).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from _results import write_csv

ROOT = Path(__file__).resolve().parents[2]
TABLE = str(ROOT / "latency_tables" / "x86-2core_{}_t1_ofa_mbv3_r28_w0.5.csv")


def main(argv: list[str] | None = None) -> int:
    from optuna._hypervolume import compute_hypervolume

    from nas.experiment import config_from_dict, run_search, trials_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--evaluator", choices=["synthetic", "supernet"], default="synthetic")
    parser.add_argument("--out", default=str(ROOT / "experiments/benchmarks/multi_device_hv.csv"))
    args = parser.parse_args(argv)
    evaluator = {"name": "synthetic"} if args.evaluator == "synthetic" else {
        "name": "supernet", "options": {"checkpoint": str(ROOT / "experiments/weights/supernet_fmnist.pt"),
                                        "val_limit": 500}}
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="multi_device_hv."))
    for seed in args.seeds:
        raw = {"name": "hv", "run_dir": str(tmp / f"s{seed}"), "seed": seed,
               "space": {"name": "ofa_mbv3", "resolutions": [28], "num_classes": 10, "in_channels": 1,
                         "width_mult": 0.5},
               "latency": {"tables": [{"path": TABLE.format("onnxruntime"), "name": "ort", "budget_quantile": 0.3},
                                      {"path": TABLE.format("tflite"), "name": "tflite", "budget_quantile": 0.3}],
                           "goal": "joint", "reward": "soft"},
               "evaluator": evaluator,
               "strategies": [{"name": "nsga2", "options": {"population": 20}}, {"name": "random"}],
               "search": {"n_trials": args.trials, "progress": False, "storage": str(tmp / f"s{seed}.journal")}}
        config = config_from_dict(raw)
        run_search(config)
        df = trials_table(config)
        df = df[df.state == "COMPLETE"]
        cols = ["accuracy", "latency_ms[ort]", "latency_ms[tflite]"]
        loss = np.column_stack([-df.accuracy, df[cols[1]], df[cols[2]]])  # all minimized
        ref = loss.max(axis=0) * np.array([1, 1.0001, 1.0001]) + np.array([1e-6, 0, 0])
        hv = {}
        for key, group in df.groupby("strategy"):
            pts = np.column_stack([-group.accuracy, group[cols[1]], group[cols[2]]])
            hv[key] = float(compute_hypervolume(pts, ref))
            rows.append({"seed": seed, "strategy": key, "trials": len(group), "evaluator": args.evaluator,
                         "hypervolume": hv[key], "best_accuracy": float(group.accuracy.max())})
        print(f"seed {seed}: hypervolume nsga2 {hv['nsga2']:.4g}, random {hv['random']:.4g} "
              f"({'nsga2' if hv['nsga2'] > hv['random'] else 'random'} wins)")
    by_seed: dict[int, dict[str, float]] = {}
    for r in rows:
        by_seed.setdefault(r["seed"], {})[r["strategy"]] = r["hypervolume"]
    wins = sum(hv["nsga2"] > hv["random"] for hv in by_seed.values())
    print(f"NSGA-II beats random search in hypervolume on {wins} of {len(args.seeds)} seeds")
    write_csv(rows, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
