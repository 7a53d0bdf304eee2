"""A table built elsewhere, on this machine: as shipped, rescaled, adapted, or rebuilt. One command:

    python experiments/benchmarks/adapt_vs_rebuild.py [--table latency_tables/x86-2core_onnxruntime_t1_ofa_mbv3_r224.csv]
        [--n-adapt 30] [--n-calibrate 60] [--held-out 100] [--passes 7] [--work runs/adapt_vs_rebuild]

Steps (each kept in --work, so a rerun resumes): `nas latency check` of the shipped table here
(verdict, canary factor); `nas latency adapt` from --n-adapt networks; a full rebuild of the same
space here (`build_table`) calibrated on --n-calibrate networks; then --held-out random archs that
none of the above measured (validation seed 0, every arch used so far excluded) are measured once,
--passes passes each, and every predictor is scored on that same ground truth: the shipped table as
is, the shipped table times the check's uniform factor (what `check --rescale` writes), the adapted
table and the rebuilt one. Prints a table and writes a CSV (default
experiments/benchmarks/adapt_vs_rebuild.csv) with the measurements' count and wall time per method.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from _results import write_csv

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    from nas._device import describe
    from nas.latency import LatencyTable, adapt, build_table, calibrate, check_table, rescale, space_of
    from nas.latency._check import here_fingerprint
    from nas.latency._validate import ErrorReport, measure_archs, random_archs
    from nas.latency._work import arch_id

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=str(ROOT / "latency_tables/x86-2core_onnxruntime_t1_ofa_mbv3_r224.csv"))
    parser.add_argument("--n-adapt", type=int, default=30)
    parser.add_argument("--n-calibrate", type=int, default=60)
    parser.add_argument("--held-out", type=int, default=100)
    parser.add_argument("--passes", type=int, default=7, help="passes per held-out network")
    parser.add_argument("--work", default=str(ROOT / "runs/adapt_vs_rebuild"))
    parser.add_argument("--out", default=str(ROOT / "experiments/benchmarks/adapt_vs_rebuild.csv"))
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    times_path = work / "seconds.json"
    seconds = json.loads(times_path.read_text()) if times_path.is_file() else {}

    def timed(name: str, fn):  # noqa: ANN001, ANN202
        t0 = time.perf_counter()
        out = fn()
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
        times_path.write_text(json.dumps(seconds, indent=1))
        return out

    shipped = LatencyTable.load(args.table)
    space = space_of(shipped)
    print(f"table {shipped.where}\n  built on {describe(shipped.metadata.get('fingerprint'))}\n"
          f"  here     {describe(here_fingerprint(shipped))}")
    check = timed("check", lambda: check_table(shipped, space, work=work / "check.work", progress=False))
    print(f"check: {check.verdict} ({check.reason}); factor {check.factor:.3f}")
    rescaled_path = work / "rescaled.csv"
    if check.verdict != "REBUILD":
        rescale(shipped, check, rescaled_path)
    else:  # one factor is what --rescale would fold in; kept to show what a uniform correction buys
        from nas.latency._check import CheckResult

        forced = CheckResult("DRIFT", "forced for the comparison", check.factor, check.rows, check.diffs,
                             check.noise_here_pct, check.noise_table_pct, check.match_pct, check.uniform_pct,
                             check.here, check.canaries_here)
        rescale(shipped, forced, rescaled_path)
    adapted_path = work / "adapted.csv"
    if not adapted_path.is_file():
        timed("adapt", lambda: adapt(shipped, space, adapted_path, n=args.n_adapt, work=work / "adapt.work",
                                     progress=False))
    adapted = LatencyTable.load(adapted_path)
    rebuilt_path = work / "rebuilt.csv"
    if not rebuilt_path.is_file() or LatencyTable.load(rebuilt_path).calibration is None:
        if not rebuilt_path.is_file():
            timed("rebuild", lambda: build_table(space, shipped.metadata["backend"], rebuilt_path,
                                                 threads=int(shipped.metadata["threads"]), device_name="here",
                                                 progress=False, log=lambda m: None))
        rebuilt = LatencyTable.load(rebuilt_path)
        timed("calibrate", lambda: calibrate(rebuilt, space, args.n_calibrate, 1000, work=work / "cal.work",
                                             progress=False))
        rebuilt.save(rebuilt_path)
    rebuilt = LatencyTable.load(rebuilt_path)
    used = set(adapted.calibration.info["arch_ids"]) | set(rebuilt.calibration.info["arch_ids"])
    used |= {c["id"] for c in (shipped.metadata.get("canaries") or {}).get("archs", [])}
    held = random_archs(space, args.held_out, 0, used)
    truth_path = work / "held_out.json"
    if truth_path.is_file():
        truth = json.loads(truth_path.read_text())
    else:
        spreads: list[float] = []
        measured = timed("held_out", lambda: measure_archs(held, space, shipped, work / "held.work", False,
                                                           spreads=spreads, passes=args.passes))
        truth = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "passes": args.passes,
                 "ids": [arch_id(a, space.num_classes, space.in_channels) for a in held],
                 "measured_ms": [float(m) for m in measured], "spread_pct": [float(s) for s in spreads]}
        truth_path.write_text(json.dumps(truth))
    assert truth["ids"] == [arch_id(a, space.num_classes, space.in_channels) for a in held]
    measured = np.array(truth["measured_ms"])
    methods = [("shipped as is", shipped, 0, 0.0), ("shipped x check factor", LatencyTable.load(rescaled_path),
                                                     len(check.rows), seconds.get("check", 0.0)),
               ("adapted", adapted, args.n_adapt, seconds.get("adapt", 0.0)),
               ("rebuilt + calibrated", rebuilt, len(rebuilt) + args.n_calibrate,
                seconds.get("rebuild", 0.0) + seconds.get("calibrate", 0.0))]
    rows = []
    print(f"\n{len(measured)} held-out archs, {args.passes} passes each, median spread "
          f"{np.median(truth['spread_pct']):.1f}% ({truth['date']})")
    print(f"{'method':24s} {'measured':>9s} {'seconds':>8s} {'MAPE %':>7s} {'±5%':>6s} {'±10%':>6s} {'tau':>6s} "
          f"{'bias %':>7s}")
    for name, table, n_measured, secs in methods:
        e = ErrorReport.of(table.predict_many(held, space), measured)
        rows.append({"method": name, "networks_or_layers_measured": n_measured, "seconds": round(secs, 1),
                     "mape_pct": round(e.mape_pct, 3), "within_5pct": e.within_5pct, "within_10pct": e.within_10pct,
                     "kendall_tau": round(e.kendall_tau, 4), "bias_pct": round(e.mean_bias_pct, 3),
                     "table": Path(args.table).name, "check_verdict": check.verdict,
                     "check_factor": round(check.factor, 4), "held_out": len(measured), "passes": args.passes,
                     "held_out_median_spread_pct": round(float(np.median(truth["spread_pct"])), 3),
                     "date": truth["date"], "machine": describe(check.here)})
        print(f"{name:24s} {n_measured:9d} {secs:8.0f} {e.mape_pct:7.2f} {e.within_5pct * 100:5.0f}% "
              f"{e.within_10pct * 100:5.0f}% {e.kendall_tau:6.3f} {e.mean_bias_pct:+7.2f}")
    write_csv(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
