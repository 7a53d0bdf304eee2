"""Post-training int8 quantization of an extracted subnet: top-1 and latency, float32 vs int8.

    python experiments/benchmarks/int8_ptq.py --arch runs/quickstart/best.json
        [--checkpoint experiments/weights/supernet_fmnist.pt] [--calibration-data 8] [--recalibrate-bn 0]
        [--split test] [--passes 7] [--out experiments/benchmarks/int8_ptq.csv] [--append]

Runs ``nas extract --format onnx --quantize int8 --evaluate SPLIT`` (float32 and int8 ONNX models,
top-1 of both with ONNX Runtime on the split, their agreement), then times the two files with
the latency tables' protocol (`nas.latency.Protocol` defaults, `--passes` independent passes, each
in its own process, ONNX Runtime, 1 thread). Run it under the CPU lock. Prints a table, writes a CSV.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shutil
import tempfile
import time
from pathlib import Path

from _results import previous_rows, write_csv

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    from nas._device import Protocol, measure
    from nas.cli import main as nas_main
    from nas.cli._model import read_arch
    from nas.latency._work import write_work

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", required=True, help="arch JSON (e.g. the quickstart's best.json)")
    parser.add_argument("--checkpoint", default=str(ROOT / "experiments/weights/supernet_fmnist.pt"))
    parser.add_argument("--calibration-data", type=int, default=8, help="train batches for the activation ranges")
    parser.add_argument("--recalibrate-bn", type=int, default=0, help="as nas extract --recalibrate-bn")
    parser.add_argument("--split", choices=("val", "test"), default="test")
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "experiments/benchmarks/int8_ptq.csv"))
    parser.add_argument("--append", action="store_true", help="keep the rows already in --out")
    args = parser.parse_args(argv)
    arch = read_arch(args.arch)
    tmp = Path(tempfile.mkdtemp(prefix="int8_ptq."))
    try:
        int8 = tmp / "models" / "int8.onnx"
        command = ["extract", "--checkpoint", args.checkpoint, "--arch", args.arch, "--format", "onnx",
                   "--out", str(int8), "--quantize", "int8", "--calibration-data", str(args.calibration_data),
                   "--evaluate", args.split, "--recalibrate-bn", str(args.recalibrate_bn)]
        printed = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(printed):
            code = nas_main(command)
        seconds = time.perf_counter() - started
        print(printed.getvalue(), end="")
        if code != 0:
            return code
        text = printed.getvalue()
        found = re.search(r"top-1 on (\d+) images \(onnxruntime\): float32 ([0-9.]+), int8 ([0-9.]+) .*agree on "
                          r"([0-9.]+)", text)
        calibration = re.search(r"int8: (\d+) calibration images", text)
        if not found:
            raise SystemExit("could not read the accuracies from nas extract's output")
        n, top1_fp32, top1_int8, agree = int(found[1]), float(found[2]), float(found[3]), float(found[4])
        fp32 = int8.with_name(int8.name + ".float32.onnx")
        fp32.rename(tmp / "models" / "fp32.onnx")
        shape = [1, 1, arch.resolution, arch.resolution]
        entries = [{"id": name, "name": name, "file": f"models/{name}.onnx", "input_shape": shape}
                   for name in ("fp32", "int8")]
        protocol = Protocol.from_dict({**Protocol().to_dict(), "passes": args.passes})
        write_work(tmp, "onnxruntime", entries, protocol, {"what": "int8 vs fp32"}, progress=False)
        results = measure(tmp, args.threads, False)
        ms = {name: results[name]["latency_ms"] for name in ("fp32", "int8")}
        spread = {name: results[name]["spread_pct"] for name in ("fp32", "int8")}
        sizes = {name: (tmp / "models" / f"{name}.onnx").stat().st_size for name in ("fp32", "int8")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    row = {"arch": arch.short(), "split": args.split, "images": n,
           "calibration_images": int(calibration[1]) if calibration else "", "recalibrate_bn": args.recalibrate_bn,
           "top1_fp32": top1_fp32, "top1_int8": top1_int8, "drop_points": round((top1_fp32 - top1_int8) * 100, 2),
           "agreement": agree, "fp32_ms": round(ms["fp32"], 4), "int8_ms": round(ms["int8"], 4),
           "int8_over_fp32": round(ms["int8"] / ms["fp32"], 4), "fp32_spread_pct": round(spread["fp32"], 2),
           "int8_spread_pct": round(spread["int8"], 2), "passes": args.passes, "threads": args.threads,
           "fp32_bytes": sizes["fp32"], "int8_bytes": sizes["int8"], "extract_seconds": round(seconds, 1)}
    print(f"\n{'model':6s} {'top-1':>7s} {'latency ms':>11s} {'spread':>7s} {'bytes':>9s}")
    for name, top1 in (("fp32", top1_fp32), ("int8", top1_int8)):
        print(f"{name:6s} {top1:7.4f} {ms[name]:11.4f} {spread[name]:6.2f}% {sizes[name]:9d}")
    print(f"drop {row['drop_points']:+.2f} points, agreement {agree:.4f}, int8/fp32 latency {row['int8_over_fp32']:.3f} "
          f"({args.passes} passes, {args.threads} thread)")
    write_csv([*(previous_rows(args.out, {}) if args.append else []), row], args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
