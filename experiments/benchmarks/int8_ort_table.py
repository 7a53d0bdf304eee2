"""int8 ONNX Runtime tables: build, calibration and held-out validation figures, one row per table.

    nas latency build ... --backend onnxruntime --threads 1 --dtype int8 --out T.csv   # first, per table
    python experiments/benchmarks/int8_ort_table.py --tables T.csv [T2.csv ...] [--n 100]
        [--compare-activations] [--out experiments/benchmarks/int8_ort_table.csv]

For each int8 table: calibrates it (`nas latency calibrate --n 40` defaults) unless it already is,
validates it on `--n` held-out random archs (7 passes each, `nas latency validate` defaults) unless
``<table>.validate/validate.json`` (or ``latency_validation/<table>/``) exists, and reports the calibrated MAPE, share within ±10% and
Kendall τ against the goals (MAPE ≤ 3%, ≥ 95% within ±10%, τ ≥ 0.93). `--compare-activations`
also times the table's canaries quantized with uint8 (QUInt8, the default) and int8 (QInt8)
activations, same protocol (why the default is QUInt8). Run it under the CPU lock. Prints a
table, writes a CSV.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from _results import write_csv

ROOT = Path(__file__).resolve().parents[2]


def activation_rows(table, space) -> list[dict[str, object]]:  # noqa: ANN001
    """The canaries timed with QUInt8 and QInt8 activations (the rest of the settings the table's)."""
    from nas.latency import LatencyTable
    from nas.latency._check import canary_archs, measure_canaries

    rows, archs = [], canary_archs(space)
    ms = {}
    for act in ("QUInt8", "QInt8"):
        meta = {**table.metadata, "quantization": {**table.metadata["quantization"], "activation_type": act}}
        with tempfile.TemporaryDirectory(prefix="int8_act.") as tmp:
            record = measure_canaries(LatencyTable({}, meta, Path(tmp) / "probe.csv"), space, passes=3,
                                      work=Path(tmp) / "work", progress=False, archs=archs)
        ms[act] = [a["latency_ms"] for a in record["archs"]]
    for (name, _), u8, s8 in zip(archs, ms["QUInt8"], ms["QInt8"]):
        rows.append({"table": table.path.name, "canary": name, "quint8_ms": round(u8, 4), "qint8_ms": round(s8, 4),
                     "qint8_over_quint8": round(s8 / u8, 3)})
    return rows


def main(argv: list[str] | None = None) -> int:
    from nas.latency import LatencyTable, calibrate, space_of, validate

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="+", required=True, help="int8 table CSVs")
    parser.add_argument("--n", type=int, default=100, help="held-out archs to validate on")
    parser.add_argument("--compare-activations", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "experiments/benchmarks/int8_ort_table.csv"))
    args = parser.parse_args(argv)
    rows, act_rows = [], []
    for path in args.tables:
        table = LatencyTable.load(path)
        if table.metadata.get("dtype") != "int8":
            raise SystemExit(f"{path} is a {table.metadata.get('dtype')} table, not int8")
        space = space_of(table)
        started = time.perf_counter()
        if table.calibration is None:
            calibrate(table, space, progress=False)
            table.save(table.path)
        cal_s = time.perf_counter() - started
        out_dir = Path(str(table.path.with_suffix("")) + ".validate")
        shipped = ROOT / "experiments/benchmarks/latency_validation" / table.path.stem
        if not (out_dir / "validate.json").is_file() and (shipped / "validate.json").is_file():
            out_dir = shipped  # the report kept with the benchmarks
        if not (out_dir / "validate.json").is_file():
            validate(table, space, args.n, out_dir=out_dir, progress=False)
        report = json.loads((out_dir / "validate.json").read_text())
        after = report["random"]["calibrated"]
        meta, cal = table.metadata, table.calibration
        row = {"table": table.path.name, "space": meta["space"]["name"], "resolutions": meta["space"]["resolutions"],
               "dtype": meta["dtype"], "activation_type": meta["quantization"]["activation_type"],
               "entries": len(table), "build_s": meta.get("build", {}).get("seconds"),
               "flagged": meta.get("build", {}).get("flagged"), "built": meta["date"],
               "fit_mape_before_pct": cal.info.get("fit_mape_before_pct"),
               "fit_mape_after_pct": cal.info.get("fit_mape_after_pct"), "calibrate_s": round(cal_s, 1),
               "validate_n": after.get("n"), "mape_pct": round(after["mape_pct"], 3),
               "within_10pct": round(after["within_10pct"], 3), "within_5pct": round(after["within_5pct"], 3),
               "kendall_tau": round(after["kendall_tau"], 4), "noise_pct": round(report["e2e_median_spread_pct"], 2),
               "goals_met": bool(after["mape_pct"] <= 3 and after["within_10pct"] >= 0.95
                                 and after["kendall_tau"] >= 0.93)}
        rows.append(row)
        if args.compare_activations:
            act_rows += activation_rows(table, space)
    print(f"{'table':58s} {'entries':>7s} {'build s':>7s} {'MAPE':>6s} {'±10%':>5s} {'τ':>6s}  goals")
    for r in rows:
        print(f"{r['table']:58s} {r['entries']:7d} {r['build_s']!s:>7s} {r['mape_pct']:5.2f}% {r['within_10pct']:5.0%} "
              f"{r['kendall_tau']:6.3f}  {'met' if r['goals_met'] else 'MISSED'}")
    if act_rows:
        print(f"\n{'canary':22s} {'QUInt8 ms':>9s} {'QInt8 ms':>9s} {'ratio':>6s}")
        for r in act_rows:
            print(f"{r['canary']:22s} {r['quint8_ms']:9.4f} {r['qint8_ms']:9.4f} {r['qint8_over_quint8']:6.2f}")
        print(f"median QInt8/QUInt8: {np.median([r['qint8_over_quint8'] for r in act_rows]):.2f}")
        write_csv(act_rows, Path(args.out).with_name(Path(args.out).stem + "_activations.csv"))
    write_csv(rows, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
