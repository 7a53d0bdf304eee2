"""Does the check's shorter protocol (`CHECK_RUNS` least calls per repeat) measure the canaries as
the build's protocol does? One command:

    python experiments/benchmarks/check_runs.py --table latency_tables/x86-2core_tflite_t1_ofa_mbv3_r224.csv
        [--rounds 2] [--out experiments/benchmarks/check_runs.csv]

Converts the table's canaries once, then measures them `--rounds` times with each protocol in turn
(the table's `runs`, then `CHECK_RUNS`), each a fresh set of processes with the table's passes.
Per canary: the median latency under each protocol, their ratio, and the seconds each took.
Prints a table and writes a CSV.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from _results import write_csv

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    from nas._arch import Arch
    from nas._device import Protocol, describe
    from nas.latency import LatencyTable, space_of
    from nas.latency._check import CHECK_RUNS, here_fingerprint, measure_canaries
    from nas.latency._work import arch_entries, write_work

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "experiments/benchmarks/check_runs.csv"))
    args = parser.parse_args(argv)
    table = LatencyTable.load(args.table)
    space = space_of(table)
    recorded = table.metadata["canaries"]
    archs = [(c["name"], Arch.from_json(c["arch"])) for c in recorded["archs"]]
    passes = int(recorded.get("passes", 5))
    full_runs = int(table.metadata["protocol"]["runs"])
    tmp = Path(tempfile.mkdtemp(prefix="check_runs."))
    models = tmp / "cache" / "models"
    backend = table.metadata["backend"]
    ms: dict[int, list[list[float]]] = {full_runs: [], CHECK_RUNS: []}
    secs: dict[int, list[float]] = {full_runs: [], CHECK_RUNS: []}
    try:
        t0 = time.perf_counter()  # convert once: every measurement reuses the same model files
        entries = arch_entries([a for _, a in archs], space.num_classes, space.in_channels, backend)
        write_work(tmp / "cache", backend, entries, Protocol.from_dict(table.metadata["protocol"]), progress=False)
        print(f"converted {len(entries)} canaries in {time.perf_counter() - t0:.1f} s", flush=True)
        for rnd in range(args.rounds):
            for runs in (full_runs, CHECK_RUNS):
                work = tmp / f"r{rnd}-{runs}"
                shutil.copytree(models, work / "models")
                t0 = time.perf_counter()
                record = measure_canaries(table, space, passes, work, False, archs, runs=runs)
                secs[runs].append(time.perf_counter() - t0)
                ms[runs].append([a["latency_ms"] for a in record["archs"]])
                print(f"round {rnd} runs {runs:2d}: {secs[runs][-1]:5.1f} s  "
                      + " ".join(f"{m:.3f}" for m in ms[runs][-1]), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    full, short = np.median(ms[full_runs], axis=0), np.median(ms[CHECK_RUNS], axis=0)
    machine = describe(here_fingerprint(table))
    rows = []
    print(f"\n{'canary':20s} {'runs ' + str(full_runs) + ' ms':>11s} {'runs ' + str(CHECK_RUNS) + ' ms':>10s} "
          f"{'ratio':>7s}")
    for (name, _), f, s in zip(archs, full, short):
        rows.append({"table": Path(args.table).name, "canary": name, "rounds": args.rounds, "passes": passes,
                     "runs_full": full_runs, "runs_check": CHECK_RUNS, "full_ms": round(float(f), 4),
                     "check_ms": round(float(s), 4), "ratio": round(float(s / f), 4),
                     "full_s": round(float(np.mean(secs[full_runs])), 1),
                     "check_s": round(float(np.mean(secs[CHECK_RUNS])), 1),
                     "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine})
        print(f"{name:20s} {f:11.3f} {s:10.3f} {s / f:7.3f}")
    print(f"seconds per measurement (conversion excluded): runs {full_runs} "
          f"{np.mean(secs[full_runs]):.1f}, runs {CHECK_RUNS} {np.mean(secs[CHECK_RUNS]):.1f}")
    write_csv(rows, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
