"""``nas latency build|bundle|import|calibrate|validate|check|adapt|show``: latency tables on the target device."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nas.cli._common import add_alias, add_count, add_quiet, add_shape_args, load_space_args

BACKEND_CHOICES = ("onnxruntime", "tflite", "torch")


def default_table_path(device: str, backend: str, threads: int, space: str, resolutions: list[int],
                       num_classes: int | None = None, in_channels: int | None = None,
                       width_mult: float | None = None, dtype: str = "float32") -> Path:
    """``latency_tables/<device>_<backend>_t<threads>[_<dtype>]_<space>_r<res>[-<res>...]_<classes>cls_<channels>ch_w<width>.csv``
    (the head's classes, the input channels and the width multiplier change the layers, so they name the table;
    the dtype does too, except float32)."""
    res = "-".join(str(r) for r in resolutions)
    shape = "".join(part for part, value in ((f"_{num_classes}cls", num_classes), (f"_{in_channels}ch", in_channels),
                                               (f"_w{width_mult:g}" if width_mult else "", width_mult)) if value)
    kind = "" if dtype == "float32" else f"_{dtype}"
    return Path("latency_tables") / f"{device}_{backend}_t{threads}{kind}_{space}_r{res}{shape}.csv"


def register(sub: argparse._SubParsersAction) -> None:
    lat = sub.add_parser("latency", help="build, import, calibrate and validate latency tables")
    cmds = lat.add_subparsers(dest="latency_command", required=True, metavar="SUBCOMMAND")

    p = cmds.add_parser("build", help="measure every layer of a space on this machine (resumable)")
    _space_args(p)
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="onnxruntime", help="runtime that times each layer")
    p.add_argument("--device-name", default="local", help="name of this machine in the table (and file name)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of the runtime")
    p.add_argument("--out", default=None, help="table CSV (default: latency_tables/<device>_<backend>_t<threads>_<space>_r<res>_<classes>cls_<channels>ch_w<width>.csv)")
    _protocol_args(p)
    p.add_argument("--channels-last", action="store_true", help="torch backend: channels_last memory format")
    _dtype_arg(p, "onnxruntime only")
    p.add_argument("--if-noisy", choices=("warn", "wait", "more-passes", "abort"), default="warn",
                   help="when the machine's noise floor (measured first) is too high: go on with a warning, "
                        "wait for quiet (up to --wait-minutes), take more passes, or stop")
    p.add_argument("--wait-minutes", type=float, default=10.0, help="--if-noisy wait: how long")
    p.add_argument("--no-canaries", action="store_true",
                   help="skip the noise floor and the canary networks (then `nas latency check` cannot compare)")
    add_quiet(p)
    p.set_defaults(func=_build)

    p = cmds.add_parser("bundle", help="export every layer as model files + manifest into a zip for a device")
    _space_args(p)
    p.add_argument("--backend", choices=("onnxruntime", "tflite"), default="onnxruntime",
                   help="runtime the device will time the layers with")
    p.add_argument("--threads", type=int, default=1, help="threads the device runner uses by default")
    p.add_argument("--out", required=True, help="bundle zip to write")
    p.add_argument("--calibration", type=int, default=40, metavar="N",
                   help="whole networks the device measures for `import` to fit the calibration (0: none; the "
                        "space's canaries always ride along, for `check`)")
    p.add_argument("--validation", type=int, default=0, metavar="N",
                   help="held-out whole networks the device measures for `validate --measured`")
    _dtype_arg(p, "onnxruntime only")
    _protocol_args(p)
    add_quiet(p)
    p.set_defaults(func=_bundle)

    p = cmds.add_parser("import", help="turn a table measured by `python -m nas.device_runner` into a table")
    p.add_argument("measured", help="CSV written by the device runner (its .json sidecar next to it)")
    p.add_argument("--device-name", default=None,
                   help="name of the device in the table (default: the runner's device name)")
    p.add_argument("--out", default=None, help="table CSV (default: latency_tables/<device>_<backend>_t<threads>_<space>_r<res>_<classes>cls_<channels>ch_w<width>.csv)")
    p.set_defaults(func=_import)

    p = cmds.add_parser("calibrate", help="fit the table's calibration on whole networks measured end to end")
    p.add_argument("--table", required=True, help="latency table CSV (its .json sidecar beside it)")
    add_count(p, 40, "random archs to measure")
    p.add_argument("--seed", type=int, default=1000, help="seed of the random archs measured")
    p.add_argument("--passes", type=int, default=7, help="independent passes per network")
    add_quiet(p)
    p.set_defaults(func=_calibrate)

    p = cmds.add_parser("validate", help="error of the predictor on held-out archs and the presets")
    p.add_argument("--table", required=True, help="latency table CSV (its .json sidecar beside it)")
    add_count(p, 100, "held-out random archs")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--no-presets", action="store_true",
                   help="validate on random archs only, not also on the space's presets")
    p.add_argument("--passes", type=int, default=7, help="independent passes per network")
    p.add_argument("--out-dir", default=None, help="folder for validate.csv/.json/.png (default: <table>.validate/)")
    p.add_argument("--measured", default=None, metavar="FILE",
                   help="score against the held-out networks a device measured (the device runner's CSV, from a "
                        "bundle made with --validation N) instead of measuring here")
    add_quiet(p)
    p.set_defaults(func=_validate)

    p = cmds.add_parser("check", help="does the table hold on this machine? MATCH (exit 0), DRIFT (3), REBUILD (4)")
    p.add_argument("--table", required=True, help="latency table CSV (its .json sidecar beside it)")
    p.add_argument("--rescale", action="store_true", help="on DRIFT: write a copy with the factor in its calibration")
    p.add_argument("--out", default=None, help="--rescale: the copy's CSV (default: <table>_rescaled.csv)")
    p.add_argument("--json-out", default=None, metavar="FILE",
                   help="also write the check (ratios, noise, verdict) as JSON to FILE")
    add_alias(p, "--json", "--json-out")
    add_quiet(p)
    p.set_defaults(func=_check)

    p = cmds.add_parser("adapt", help="refit a table from another machine to this one from a few whole networks")
    p.add_argument("--table", required=True, help="latency table CSV (its .json sidecar beside it)")
    add_count(p, 30, "networks to measure here")
    p.add_argument("--seed", type=int, default=2000, help="seed of the random archs measured")
    p.add_argument("--passes", type=int, default=5, help="independent passes per network")
    p.add_argument("--out", default=None, help="adapted table CSV (default: <table>_adapted.csv)")
    add_quiet(p)
    p.set_defaults(func=_adapt)

    p = cmds.add_parser("show", help="a table's metadata, stability and (optionally) the prediction for an arch")
    p.add_argument("--table", default=None, help="latency table CSV (its .json sidecar beside it)")
    p.add_argument("old_table", nargs="?", default=None, help=argparse.SUPPRESS)  # `latency show T`: deprecated
    p.add_argument("--arch", default=None, help="arch JSON file to predict")
    p.add_argument("--entries", action="store_true", help="list every entry")
    p.add_argument("--json", action="store_true", help="print one JSON object only (metadata, stability, "
                                                       "entries and prediction when asked)")
    p.set_defaults(func=_show)


def _space_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", required=True, help="built-in space name or YAML path")
    add_shape_args(p, "input resolutions to cover")


def _dtype_arg(p: argparse.ArgumentParser, note: str) -> None:
    p.add_argument("--dtype", choices=("float32", "int8"), default="float32",
                   help=f"the models' dtype; int8: each statically quantized with onnxruntime.quantization (QDQ, "
                        f"per-channel int8 weights, uint8 activations, random calibration inputs; {note})")


def _protocol_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--passes", type=int, default=3, help="independent measuring passes")
    p.add_argument("--repeats", type=int, default=5, help="repeated medians per pass")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs before each pass")


def _load_space(args: argparse.Namespace):  # noqa: ANN202
    return load_space_args(args.space, args)


def _protocol(args: argparse.Namespace):  # noqa: ANN202
    from nas.latency import Protocol

    return Protocol(warmup=args.warmup, repeats=args.repeats, passes=args.passes)


def _build(args: argparse.Namespace) -> int:
    import time

    from nas.latency import build_table

    space = _load_space(args)
    resolutions = list(args.resolutions or space.resolutions)
    out = Path(args.out) if args.out else default_table_path(args.device_name, args.backend, args.threads,
                                                             space.name, resolutions, space.num_classes,
                                                             space.in_channels, space.width_mult, args.dtype)
    started = time.perf_counter()
    table = build_table(space, args.backend, out, resolutions=resolutions, threads=args.threads,
                        device_name=args.device_name, protocol=_protocol(args), channels_last=args.channels_last,
                        progress=not args.quiet, canaries=not args.no_canaries, if_noisy=args.if_noisy,
                        wait_minutes=args.wait_minutes, log=_log, dtype=args.dtype)
    s = table.summary()
    canaries = table.metadata.get("canaries")
    print(f"wrote {out}: {s['entries']} entries, {s['remeasured']} re-measured, {s['flagged']} flagged, "
          f"median spread {s['median_spread_pct']:.2f}%, {time.perf_counter() - started:.1f} s"
          + (f"; {len(canaries['archs'])} canaries, noise floor {canaries['noise_pct']:.1f}%" if canaries else ""))
    return 0


def _log(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def _check(args: argparse.Namespace) -> int:
    from nas.latency import LatencyTable, check_table, format_check, rescale
    from nas.latency import space_of

    table = LatencyTable.load(args.table)
    result = check_table(table, space_of(table), progress=not args.quiet)
    print(format_check(result, table))
    if args.json_out:
        from dataclasses import asdict

        from nas._atomic import atomic_write_json

        data = {k: v for k, v in asdict(result).items() if k != "canaries_here"}
        atomic_write_json(args.json_out, {**data, "table": table.where, "exit_code": result.exit_code})
    if args.rescale:
        if result.verdict != "DRIFT":
            _log(f"--rescale: nothing written (verdict {result.verdict})")
        else:
            out = Path(args.out) if args.out else table.path.with_name(table.path.stem + "_rescaled.csv")
            rescale(table, result, out)
            print(f"wrote {out}: calibration x {result.factor:.4f}, this machine's fingerprint and canaries")
    return result.exit_code


def _bundle(args: argparse.Namespace) -> int:
    from nas.latency import write_bundle

    space = _load_space(args)
    out = write_bundle(space, args.backend, args.out, args.resolutions, args.threads, _protocol(args),
                       progress=not args.quiet, calibration=args.calibration, validation=args.validation,
                       dtype=args.dtype)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); on the device: PYTHONPATH={out.name} "
          f"python -m nas.device_runner {out.name} --out measured.csv")
    return 0


def _import(args: argparse.Namespace) -> int:
    from nas.latency import LatencyTable, import_measured

    if args.out:
        out = Path(args.out)
    else:
        meta = LatencyTable.load(args.measured).metadata
        space = meta.get("space", {})
        out = default_table_path(args.device_name or meta["device_name"], meta["backend"], meta["threads"],
                                 space.get("name", "space"), space.get("resolutions", []), space.get("num_classes"),
                                 space.get("in_channels"), space.get("width_mult"), meta.get("dtype", "float32"))
    table = import_measured(args.measured, out, args.device_name)
    cal, canaries = table.calibration, table.metadata.get("canaries")
    print(f"wrote {out}: {len(table)} entries from {table.metadata['device_name']}"
          + (f"; {len(canaries['archs'])} canaries (noise floor {canaries['noise_pct']:.1f}%)" if canaries else "")
          + (f"; calibration fitted on {len(cal.info['arch_ids'])} networks measured there, fit MAPE "
             f"{cal.info['fit_mape_before_pct']:.2f}% -> {cal.info['fit_mape_after_pct']:.2f}%" if cal else
             "; no whole networks in it: not calibrated"))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from nas.latency import LatencyTable
    from nas.latency import calibrate, space_of

    table = LatencyTable.load(args.table)
    cal, before, after = calibrate(table, space_of(table), args.n, args.seed, progress=not args.quiet,
                                  passes=args.passes)
    table.save(table.path)
    print(f"calibration: {cal.describe()} (fitted on {args.n} archs)")
    print(f"fit MAPE {before.mape_pct:.2f}% -> {after.mape_pct:.2f}%; saved in {table.path.with_suffix('.json')}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from nas.latency import LatencyTable, warn_if_foreign
    from nas.latency import format_report, space_of, validate

    table = LatencyTable.load(args.table)
    warn_if_foreign(table)
    out_dir = Path(args.out_dir) if args.out_dir else Path(str(table.path.with_suffix("")) + ".validate")
    if args.measured:
        from nas.latency import validate_measured, write_validation

        report = validate_measured(table, space_of(table), args.measured)
        write_validation(report, out_dir)
    else:
        report = validate(table, space_of(table), args.n, args.seed, not args.no_presets, out_dir,
                          progress=not args.quiet, passes=args.passes)
    print(format_report(report))
    print(f"wrote {out_dir}/validate.csv, validate.json, validate.png")
    return 0


def _adapt(args: argparse.Namespace) -> int:
    from nas.latency import LatencyTable, adapt
    from nas.latency import space_of

    table = LatencyTable.load(args.table)
    out = Path(args.out) if args.out else table.path.with_name(table.path.stem + "_adapted.csv")
    _, report = adapt(table, space_of(table), out, args.n, args.seed, args.passes, progress=not args.quiet)
    factors = ", ".join(f"{f} {v:.3f}" for f, v in report["factors"].items())
    print(f"factors per family: {factors}")
    print(f"per layer {report['per_layer_ms']:+.5f} ms, offset {report['offset_ms']:+.4f} ms (ridge {report['ridge']:g}); "
          f"fit MAPE {report['fit_mape_pct']:.2f}%, leave-one-out MAPE {report['loo_mape_pct']:.2f}% on "
          f"{report['n']} networks, noise floor {report['noise_pct']:.1f}%")
    print(f"wrote {out} in {report['seconds']:.0f} s; validate it: nas latency validate --table {out}")
    return 0


def _show(args: argparse.Namespace) -> int:
    import sys

    from nas.cli import CLIError
    from nas.latency import LatencyTable

    if args.old_table:
        print("nas: warning: `nas latency show TABLE` is deprecated; use --table TABLE", file=sys.stderr)
    if not (args.table or args.old_table):
        raise CLIError("latency show: give the table: --table T")
    table = LatencyTable.load(args.table or args.old_table)
    meta = {k: v for k, v in table.metadata.items() if k not in ("csv_sha256",)}
    cal = meta.pop("calibration", None)
    if cal:
        cal = {k: v for k, v in cal.items() if k not in ("arch_ids", "network_ms")}
    if meta.get("canaries"):  # the canaries' names and latencies, not their arch JSON
        meta["canaries"] = {**meta["canaries"], "archs": {c["name"]: c["latency_ms"] for c in meta["canaries"]["archs"]}}
    if meta.get("fingerprint"):
        from nas._device import describe

        meta["machine"] = describe(meta["fingerprint"])
    out: dict = {**meta, "calibration": cal, "stability": table.summary()}
    entries = [{"key": k.short(), **{f: table.entry(k)[f] for f in ("latency_ms", "spread_pct", "flagged")}}
               for k in table.keys()] if args.entries else []
    prediction = None
    if args.arch:
        from nas.cli._model import read_arch
        from nas.latency import space_of

        arch = read_arch(args.arch)
        space = space_of(table)
        prediction = {"arch": arch.short(), "predicted_ms": table.predict(arch, space),
                      "sum_of_entries_ms": table.predict(arch, space, calibrated=False)}
    if args.json:
        print(json.dumps({**out, **({"entries": entries} if args.entries else {}),
                          **({"prediction": prediction} if prediction else {})}, indent=2, default=str))
        return 0
    print(json.dumps(out, indent=2, default=str))
    for e in entries:
        print(f"{e['key']:60s} {e['latency_ms']:9.4f} ms  spread {e['spread_pct']:5.1f}%"
              f"{'  FLAGGED' if e['flagged'] else ''}")
    if prediction:
        print(f"{prediction['arch']}\npredicted {prediction['predicted_ms']:.4f} ms "
              f"(sum of entries {prediction['sum_of_entries_ms']:.4f} ms)")
    return 0
