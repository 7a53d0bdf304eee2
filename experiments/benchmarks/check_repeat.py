"""How often does `nas latency check` say MATCH on the machine that built the table? One command:

    python experiments/benchmarks/check_repeat.py --table runs/tables/local_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv
        [--repeats 10] [--out experiments/benchmarks/check_repeat.csv]

Runs the check `--repeats` times in a row (each a fresh measurement of the table's canaries, in new
processes) and reports, per run: the verdict, the largest canary deviation from the recorded latency,
the spread of the ratios around their common factor, the noise floor and the tolerances. The MATCH
tolerance (`nas.latency._check.MATCH_PCT`) is set from one such series and verified on another.
Prints a table and writes (or with --append, extends) a CSV.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from _results import previous_rows, write_csv

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    from nas._device import describe
    from nas.latency import LatencyTable, check_table, space_of

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--series", default="", help="a label for this series (e.g. 'set threshold', 'verify')")
    parser.add_argument("--out", default=str(ROOT / "experiments/benchmarks/check_repeat.csv"))
    parser.add_argument("--append", action="store_true", help="add to the rows already in --out")
    args = parser.parse_args(argv)
    table = LatencyTable.load(args.table)
    space = space_of(table)
    rows = previous_rows(args.out, {}) if args.append else []
    print(f"{'run':>3s} {'verdict':8s} {'max |r-1| %':>11s} {'around g %':>10s} {'factor':>7s} {'noise %':>7s} "
          f"{'match tol %':>11s} {'seconds':>7s}")
    for i in range(args.repeats):
        t0 = time.perf_counter()
        result = check_table(table, space, progress=False)
        secs = time.perf_counter() - t0
        r = np.array([row["ratio"] for row in result.rows])
        far = float(np.abs(r - 1).max() * 100)
        around = float(np.abs(r / result.factor - 1).max() * 100)
        rows.append({"series": args.series, "run": i, "table": Path(args.table).name,
                     "table_date": table.metadata.get("date"), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "verdict": result.verdict, "max_dev_pct": round(far, 3), "around_factor_pct": round(around, 3),
                     "factor": round(result.factor, 4), "noise_pct": result.noise_here_pct,
                     "match_pct": round(result.match_pct, 3), "uniform_pct": round(result.uniform_pct, 3),
                     "seconds": round(secs, 1), "machine": describe(result.here)})
        print(f"{i:3d} {result.verdict:8s} {far:11.2f} {around:10.2f} {result.factor:7.3f} "
              f"{result.noise_here_pct:7.1f} {result.match_pct:11.1f} {secs:7.1f}")
    mine = [row for row in rows if row["series"] == args.series]
    print(f"MATCH in {sum(row['verdict'] == 'MATCH' for row in mine)} of {len(mine)} checks "
          f"(series {args.series!r})")
    write_csv(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
