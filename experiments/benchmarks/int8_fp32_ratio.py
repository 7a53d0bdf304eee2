"""How much faster is int8 than float32 across a space, and which op choices are slower in int8?

    python experiments/benchmarks/int8_fp32_ratio.py \
        --fp32 latency_tables/xeon-amx-2core_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv \
        --int8 latency_tables/xeon-amx-2core_onnxruntime_t1_int8_ofa_mbv3_r28_w0.5.csv [--n 1000] [--seed 0]
        [--out experiments/benchmarks/int8_fp32_ratio.csv]

Both tables of one space, built on the same machine. Whole networks: the calibrated predicted
latency of `--n` random archs on each table, and the int8/fp32 ratio (median, 5th, 95th
percentile). Per layer: the int8/fp32 ratio of every entry, grouped by each op choice (kind, op,
kernel, expand, squeeze-excite, activation, stride, input size); a ratio above 1 is slower in int8.
Prints both tables and writes one CSV (rows: "networks", then one per choice value). No timing.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from _results import write_csv

ROOT = Path(__file__).resolve().parents[2]
CHOICES = ("kind", "op", "kernel", "expand", "se", "act", "stride", "in_hw")


def network_row(group: str, p32: np.ndarray, p8: np.ndarray) -> dict[str, object]:
    ratio = p8 / p32
    return {"group": group, "value": "", "n": len(ratio), "median_ratio": round(float(np.median(ratio)), 4),
            "p5_ratio": round(float(np.quantile(ratio, 0.05)), 4), "p95_ratio": round(float(np.quantile(ratio, 0.95)), 4),
            "slower_share": round(float(np.mean(ratio > 1)), 4), "fp32_median_ms": round(float(np.median(p32)), 4),
            "int8_median_ms": round(float(np.median(p8)), 4)}


def _order(item: tuple[tuple[str, str], list]) -> tuple[int, float, str]:
    (choice, value), _ = item
    try:
        return CHOICES.index(choice), float(value), value
    except ValueError:
        return CHOICES.index(choice), float("inf"), value


def main(argv: list[str] | None = None) -> int:
    from nas.latency import LatencyTable, space_of

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fp32", required=True, help="float32 table")
    parser.add_argument("--int8", required=True, help="int8 table of the same space")
    parser.add_argument("--n", type=int, default=1000, help="random archs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "experiments/benchmarks/int8_fp32_ratio.csv"))
    args = parser.parse_args(argv)
    fp32, int8 = LatencyTable.load(args.fp32), LatencyTable.load(args.int8)
    for table, dtype in ((fp32, "float32"), (int8, "int8")):
        if table.metadata.get("dtype", "float32") != dtype:
            raise SystemExit(f"{table.where} is a {table.metadata.get('dtype')} table, not {dtype}")
    space = space_of(int8)
    rng = np.random.default_rng(args.seed)
    archs = [space.sample(rng) for _ in range(args.n)]
    p32, p8 = fp32.predict_many(archs, space), int8.predict_many(archs, space)
    rows = [network_row("networks (sum of entries)", fp32.predict_many(archs, space, calibrated=False),
                        int8.predict_many(archs, space, calibrated=False))]
    if fp32.calibration is None or int8.calibration is None:
        print("note: a table is not calibrated; its 'calibrated' row is the plain sum of entries")
    rows.insert(0, network_row("networks (calibrated)", p32, p8))
    for row in rows:
        print(f"{space.name} r{list(space.resolutions)}, {args.n} random archs, {row['group']}: int8/fp32 median "
              f"{row['median_ratio']:.3f}, 5th pct {row['p5_ratio']:.3f}, 95th pct {row['p95_ratio']:.3f}; int8 slower "
              f"for {row['slower_share']:.1%} of the archs; median {row['fp32_median_ms']:.3f} ms fp32, "
              f"{row['int8_median_ms']:.3f} ms int8")
    groups: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for key in fp32.keys():
        if key not in int8:
            continue
        a, b = fp32.lookup_ms(key), int8.lookup_ms(key)
        for choice in CHOICES:
            if key.kind != "block" and choice in ("expand", "se", "kernel", "stride", "op"):
                continue
            groups[(choice, str(getattr(key, choice)))].append((a, b))
    print(f"\n{'choice':8s} {'value':10s} {'layers':>6s} {'median':>7s} {'min':>6s} {'max':>6s} {'slower':>6s}  "
          "int8/fp32 per layer")
    for (choice, value), pairs in sorted(groups.items(), key=_order):
        r = np.array([b / a for a, b in pairs])
        row = {"group": choice, "value": value, "n": len(r), "median_ratio": round(float(np.median(r)), 4),
               "p5_ratio": round(float(np.quantile(r, 0.05)), 4), "p95_ratio": round(float(np.quantile(r, 0.95)), 4),
               "slower_share": round(float(np.mean(r > 1)), 4),
               "fp32_median_ms": round(float(np.median([a for a, _ in pairs])), 5),
               "int8_median_ms": round(float(np.median([b for _, b in pairs])), 5)}
        rows.append(row)
        print(f"{choice:8s} {value:10s} {len(r):6d} {row['median_ratio']:7.3f} {r.min():6.3f} {r.max():6.3f} "
              f"{row['slower_share']:6.0%}")
    write_csv(rows, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
