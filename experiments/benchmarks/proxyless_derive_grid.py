"""Tune the target-aware derive offline on searches already run: re-derive from each saved network
(α and weights, `proxyless_targets.py --save DIR`) for a grid of (tolerance, max flip cost) and report
how many derived archs land within ±10% of their target and the mean change of shared-weight val CE
against the plain argmax. No search is rerun, so a grid costs seconds per setting.

    python experiments/benchmarks/proxyless_derive_grid.py --nets DIR --csv DEV.csv [DEV2.csv ...]
        [--tolerances 0.03 0.05 0.08] [--max-nats 1.6 2.3 3.0 4.6] [--out experiments/benchmarks/proxyless_derive_grid.csv]

Use it on development seeds only; the held-out seeds are run once with the chosen defaults.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch

from nas.data import load_dataset
from nas.latency import LatencyTable, space_of
from nas.proxyless import ProxylessNetwork, derive_to_target

from _results import write_csv
from proxyless_targets import SPACE_DEFAULTS, path_ce


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", required=True)
    ap.add_argument("--csv", nargs="+", required=True, help="the proxyless_targets.py CSVs of the saved searches")
    ap.add_argument("--tolerances", type=float, nargs="+", default=[0.03, 0.05, 0.08])
    ap.add_argument("--max-nats", type=float, nargs="+", default=[1.6, 2.3, 3.0, 4.6])
    ap.add_argument("--within-pct", type=float, default=10.0)
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".csv")))
    args = ap.parse_args()
    torch.set_num_threads(1)
    runs = [r for f in args.csv for r in csv.DictReader(open(f))]
    results = {(t, m): [] for t in args.tolerances for m in args.max_nats}
    for run in runs:
        table = LatencyTable.load(Path("latency_tables") / run["table"])
        space = space_of(table)
        net = ProxylessNetwork(space, share_weights=SPACE_DEFAULTS[run["space"]]["share_weights"])
        net.load_state_dict(torch.load(Path(args.nets) / f"{run['space']}_T{run['target_ms']}_s{run['seed']}.pt"))
        data = load_dataset(run["dataset"], val_fraction=0.1, seed=int(run["seed"]))
        target = float(run["target_ms"])
        cache: dict[object, float] = {}
        for (tol, nats), rows in results.items():
            d = derive_to_target(net, table, target, tol, max_flip_nats=nats)
            for arch in (d.arch, d.argmax):
                if arch not in cache:
                    cache[arch] = path_ce(net, [net.path_of(arch)], data, int(run["seed"]))[0]
            rows.append({"space": run["space"], "seed": run["seed"], "target_ms": target, "tolerance": tol,
                         "max_flip_nats": nats, "error_pct": round(100 * (d.predicted_ms / target - 1), 1),
                         "argmax_error_pct": round(100 * (d.argmax_ms / target - 1), 1), "flips": d.flips,
                         "logp_given_up": round(d.logp_given_up, 3),
                         "dce": round(cache[d.arch] - cache[d.argmax], 4)})
        print(f"{run['space']} seed {run['seed']} T={target}: done", flush=True)
    out = []
    print("tolerance | max_flip_nats | within | argmax within | mean dCE | max dCE")
    for (tol, nats), rows in results.items():
        within = sum(abs(r["error_pct"]) <= args.within_pct for r in rows)
        base = sum(abs(r["argmax_error_pct"]) <= args.within_pct for r in rows)
        dce = np.array([r["dce"] for r in rows])
        print(f"{tol} | {nats} | {within}/{len(rows)} | {base}/{len(rows)} | {dce.mean():+.4f} | {dce.max():+.4f}")
        out += rows
    write_csv(out, Path(args.out))


if __name__ == "__main__":
    main()
