"""Latency predictor accuracy and speed, one command:

    flock /tmp/hwnas-cpu.lock python experiments/benchmarks/latency_accuracy.py [--tables T.csv ...] [--n 100]

For each table (default: every shipped table in latency_tables/): measure `n` held-out random archs
and the space's presets end to end with the table's backend and protocol, and report RMSE, MAPE,
share within ±5% / ±10% and Kendall τ for the plain sum and the calibrated prediction; the share of
re-measured / flagged entries and the build time recorded in the table; and the vectorized
prediction speed (archs/s over a choice-index matrix of 1,000,000 random archs). Prints a table and
writes a CSV (default experiments/benchmarks/latency_accuracy.csv).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from _results import write_csv

ROOT = Path(__file__).resolve().parents[2]


def prediction_speed(table, space, n: int = 1_000_000, seed: int = 0) -> float:
    """archs/s of `predict_many` on an (n, len(space.dims)) option-index matrix (best of 3)."""
    compiled = table.compile(space)
    rng = np.random.default_rng(seed)
    index = np.column_stack([rng.integers(len(opts), size=n) for opts in space.dims.values()])
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        table.predict_many(index, space)
        best = min(best, time.perf_counter() - t0)
    return n / best


def main(argv: list[str] | None = None) -> int:
    from nas.latency import LatencyTable
    from nas.latency._validate import space_of, validate

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="+", default=None, help="table CSVs (default: latency_tables/*.csv)")
    parser.add_argument("--n", type=int, default=100, help="held-out random archs per table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--passes", type=int, default=7, help="independent passes per measured network")
    parser.add_argument("--out", default=str(ROOT / "experiments/benchmarks/latency_accuracy.csv"))
    parser.add_argument("--plots", default=None, help="folder for one validate.png/.csv per table")
    args = parser.parse_args(argv)
    tables = [Path(t) for t in args.tables] if args.tables else sorted((ROOT / "latency_tables").glob("*.csv"))
    rows = []
    for path in tables:
        table = LatencyTable.load(path)
        space = space_of(table)
        out_dir = Path(args.plots) / path.stem if args.plots else None
        report = validate(table, space, args.n, args.seed, True, out_dir, progress=False, passes=args.passes)
        summary = table.summary()
        speed = prediction_speed(table, space)
        for group in ("random", "presets"):
            for which in ("sum", "calibrated"):
                if group not in report:
                    continue
                e = report[group][which]
                rows.append({"table": path.name, "backend": table.metadata["backend"], "space": space.name,
                             "resolution": "/".join(map(str, space.resolutions)), "set": group, "predictor": which,
                             "n": e["n"], "rmse_ms": e["rmse_ms"], "mape_pct": e["mape_pct"],
                             "within_5pct": e["within_5pct"], "within_10pct": e["within_10pct"],
                             "kendall_tau": e["kendall_tau"], "bias_pct": e["mean_bias_pct"],
                             "calibrated": report["calibrated"], "e2e_passes": args.passes,
                             "e2e_median_spread_pct": report["e2e_median_spread_pct"], "entries": summary["entries"],
                             "remeasured_share": summary["remeasured"] / summary["entries"],
                             "flagged_share": summary["flagged"] / summary["entries"],
                             "build_s": table.metadata.get("build", {}).get("seconds"),
                             "predict_archs_per_s": speed})
        print(f"{path.name}: done", file=sys.stderr, flush=True)
    head = (f"{'table':52s} {'set':7s} {'pred':10s} {'n':>3s} {'MAPE%':>6s} {'±5%':>6s} {'±10%':>6s} {'tau':>6s} "
            f"{'bias%':>6s} {'flag%':>5s} {'build s':>7s} {'Marchs/s':>8s}")
    print(head)
    for r in rows:
        print(f"{r['table'][:52]:52s} {r['set']:7s} {r['predictor']:10s} {r['n']:3d} {r['mape_pct']:6.2f} "
              f"{r['within_5pct'] * 100:5.1f}% {r['within_10pct'] * 100:5.1f}% {r['kendall_tau']:6.3f} "
              f"{r['bias_pct']:+6.2f} {r['flagged_share'] * 100:5.1f} {r['build_s'] or float('nan'):7.1f} "
              f"{r['predict_archs_per_s'] / 1e6:8.2f}")
    if rows:
        write_csv(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
