"""``nas search --config C [--set KEY=VALUE ...]`` and ``nas results RUN [--export-best FILE]``."""

from __future__ import annotations

import argparse
import sys

from nas.cli._common import add_overrides, add_quiet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="run (or resume, or join) a search experiment")
    p.add_argument("--config", required=True, help="experiment YAML (see experiments/)")
    add_overrides(p, "search.n_trials=50")
    p.add_argument("--strategy", action="append", default=None,
                   help="run only this strategy label (repeatable; default: all)")
    add_quiet(p)
    p.set_defaults(func=_search)
    r = sub.add_parser("results", help="tables, best archs per budget, Pareto plot of a run folder")
    r.add_argument("run", help="run folder (run_dir of the config)")
    r.add_argument("--export-best", metavar="FILE|DIR",
                   help="write the best arch (within the budget) as JSON; a multi-device run (budgets on several "
                        "tables) writes one DIR/<table>.json per device")
    r.add_argument("--budget-ms", type=float, help="budget for --export-best/--measure (default: the search budget)")
    r.add_argument("--measure", action="store_true",
                   help="measure the best arch end to end on each table's backend (predicted vs measured; "
                        "run under the CPU lock); a multi-device run measures each device's winner on every "
                        "table that can be measured here (the cross-device matrix, measured.csv)")
    r.add_argument("--verify", type=int, default=0, metavar="K",
                   help="before exporting and measuring, time the best arch (each device's winner) on its own table "
                        "here; one over its budget is replaced by the most accurate trial that measures within it "
                        "(K candidates per round, up to 3 rounds, later rounds corrected by the table's bias on the "
                        "candidates; run under the CPU lock)")
    r.set_defaults(func=_results)


def _search(args: argparse.Namespace) -> int:
    from nas.experiment import load_config, report, run_search

    config = load_config(args.config, args.overrides)
    reports = run_search(config, progress=False if args.quiet else None, strategies=args.strategy,
                         notice=lambda line: print(f"nas: warning: {line}", file=sys.stderr, flush=True))
    for r in reports:
        print(f"{r.study}: {r.completed_here} trials run here, {r.completed_total} completed in all"
              + (f", {r.stale_failed} stale trial(s) of dead workers marked failed" if r.stale_failed else ""))
    if not any(r.completed_total for r in reports):  # e.g. another worker is still deriving
        print("no completed trials yet: run `nas results` when the other workers are done")
        return 0
    _print_report(report(config.run_dir))
    return 0


def _results(args: argparse.Namespace) -> int:
    from nas.experiment import RunFolder, measure_best, report, run_machine_warnings

    run = RunFolder.open(args.run)
    for line in run_machine_warnings(run):  # `nas search` says these at its start
        print(f"warning: {line}", file=sys.stderr, flush=True)
    rep = report(run, export_best=args.export_best, budget_ms=args.budget_ms)
    _print_report(rep)
    winners, verified = rep.winners, None
    if args.verify:
        winners, verified = _verify(run, rep, args)
    if args.measure and winners is not None:
        _measure_winners(run, winners)
    elif args.measure:
        for m in measure_best(run, args.budget_ms, arch_json=verified):
            print(f"best arch (trial {m['trial']}, {m['strategy']}): accuracy {m['accuracy']:.4f}, latency on "
                  f"{m['table']}: predicted {m['predicted_ms']:.3f} ms, measured {m['measured_ms']:.3f} ms "
                  f"({m['error_pct']:+.1f}%)"
                  + (f", {'within' if m['meets_budget'] else 'OVER'} the {m['budget_ms']:.4g} ms budget"
                     if m["meets_budget"] is not None else "")
                  + f"; table check here: {m['check']} ({m['check_reason']})")
    return 0


def _against_baseline(rep, table: str, preset: dict) -> str:  # noqa: ANN001 - RunReport
    """How the best arch within the baseline's budget compares with it, and whether the difference is
    beyond the binomial noise of the images both were measured on."""
    from nas.experiment._results import binomial_noise95

    rows = rep.best[(rep.best.table == table) & (rep.best.budget_ms == preset["scaled_to_ms"])]
    images = (preset["result"].get("extra") or {}).get("val_images")
    if rows.empty or not images or rows.accuracy.isna().all():
        return ""
    best, base = float(rows.accuracy.iloc[0]), float(preset["result"]["accuracy"])
    noise = binomial_noise95(best, images, base)
    verdict = "within" if abs(best - base) <= noise else "beyond"
    return (f"; the best arch within the budget leads it by {100 * (best - base):+.2f} points, {verdict} the binomial "
            f"noise of {images} images (±{100 * noise:.2f} at 95%)")


def _verify(run, rep, args):  # noqa: ANN001, ANN202 - RunFolder, RunReport, Namespace -> (winners | None, arch JSON | None)
    """--verify K: the verified winners (multi-device), or the verified best arch's JSON (one budget);
    --export-best is rewritten with them."""
    from nas.experiment import export_best_arch, export_winners, verify_best

    winners, notes = verify_best(run, rep.trials, rep.winners, args.budget_ms, args.verify)
    for line in notes:
        print(f"verify: {line}")
    for w in winners.itertuples():
        if w.arch and w.verified_ms == w.verified_ms:  # NaN: the device's backend does not run here
            print(f"verified: {w.device}: trial {w.trial}, accuracy {w.accuracy:.4f}, measured {w.verified_ms:.4g} ms "
                  f"against {w.budget_ms:.4g} ms ({'within' if w.verified_ms <= w.budget_ms else 'OVER'})")
        elif w.arch:
            print(f"verify: {w.device}: not measured here (its backend does not run on this machine); winner kept")
    if rep.winners is not None:
        winners.drop(columns=["arch"]).to_csv(run.path / "winners.csv", index=False)
        if args.export_best:
            export_winners(winners, args.export_best)
        return winners, None
    arch = winners.arch.iloc[0] or None
    if args.export_best and arch:
        export_best_arch(rep.trials[rep.trials.arch == arch], args.export_best)
    return None, arch


def _measure_winners(run, winners) -> None:  # noqa: ANN001 - RunFolder, pandas.DataFrame
    import pandas as pd

    from nas.experiment import build_latency, build_space, check_matrix, matrix, measure_winners

    space = build_space(run.config)
    measured, skipped = measure_winners(winners, space, build_latency(run.config, space), run.path / ".measure",
                                        run.budgets)
    for table, why in skipped.items():
        print(f"not measured on {table}: {why}")
    if measured.empty:
        return
    measured.to_csv(run.path / "measured.csv", index=False)
    with pd.option_context("display.width", 160):
        print("\nmeasured latency (ms) of each device's winner (rows) on each table (columns):")
        print(matrix(measured).round(4).to_string())
    for line in check_matrix(measured) or ["every winner meets its own budget when measured, and no other "
                                           "winner within a device's budget is more accurate there"]:
        print(f"check: {line}")
    print(f"measured: {run.path / 'measured.csv'}")


def _print_report(rep) -> None:  # noqa: ANN001 - nas.experiment.RunReport
    import pandas as pd

    if rep.stand_ins:
        print(f"\nnote: {rep.stand_ins.notice()}")
    with pd.option_context("display.width", 160, "display.max_colwidth", 70):
        print("\nbest arch within each budget:")
        best = rep.best.drop(columns=["arch"], errors="ignore")
        best["arch_short"] = best["arch_short"].map(lambda s: s if len(s) <= 60 else s[:57] + "...")
        print(best.to_string(index=False))
        for name, p in rep.presets.items():
            if "family" not in p or "result" not in p:
                continue
            table = next(iter(p["result"]["latency_ms"]))
            print(f"baseline {name}, scaled to {p['scaled_to_ms']:.4g} ms: accuracy {p['result']['accuracy']:.4f} "
                  f"at {p['result']['latency_ms'][table]:.4g} ms on {table} (predicted)"
                  + _against_baseline(rep, table, p))
        print("\nhypervolume per strategy (same reference point):")
        print(rep.hypervolume.to_string(index=False))
        if rep.hypervolume_summary is not None:
            print("\nhypervolume over seeds (mean ± std; paired with random search seed by seed):")
            print(rep.hypervolume_summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if rep.winners is not None:
        with pd.option_context("display.width", 160, "display.max_colwidth", 60):
            print(f"\nwinner per device (goal {rep.winners.goal.iloc[0]}):")
            winners = rep.winners.drop(columns=["arch", "goal"])
            winners["arch_short"] = winners["arch_short"].map(lambda s: s if len(s) <= 60 else s[:57] + "...")
            print(winners.to_string(index=False))
    if rep.dtype_ratios is not None:
        for r in rep.dtype_ratios.itertuples():
            print(f"\nint8/float32 across the space ({r.archs} random archs, {r.int8_table} vs {r.float32_table}): "
                  f"median {r.median:.3f} [5th {r.p5:.3f}, 95th {r.p95:.3f}], {r.slower_in_int8_pct:.1f}% slower in int8")
    print(f"\ntrials: {rep.csv_path}\nplot:   {rep.plot_path}")
    if rep.dtype_plot is not None:
        print(f"float32 vs int8: {rep.dtype_plot}")
    if rep.exported_per_device:
        print("best arch per device: " + ", ".join(str(p) for p in rep.exported_per_device))
    elif rep.exported:
        print(f"best arch: {rep.exported}")
