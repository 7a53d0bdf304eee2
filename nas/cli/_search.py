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
    r.add_argument("--export-best", metavar="FILE", help="write the best arch (within the budget) as JSON")
    r.add_argument("--budget-ms", type=float, help="budget for --export-best/--measure (default: the search budget)")
    r.add_argument("--measure", action="store_true",
                   help="measure the best arch end to end on each table's backend (predicted vs measured; "
                        "run under the CPU lock)")
    r.set_defaults(func=_results)


def _search(args: argparse.Namespace) -> int:
    from nas.experiment import load_config, report, run_search

    config = load_config(args.config, args.overrides)
    reports = run_search(config, progress=False if args.quiet else None, strategies=args.strategy,
                         notice=lambda line: print(f"nas: warning: {line}", file=sys.stderr, flush=True))
    for r in reports:
        print(f"{r.study}: {r.completed_here} trials run here, {r.completed_total} completed in all"
              + (f", {r.stale_failed} stale trial(s) of dead workers marked failed" if r.stale_failed else ""))
    _print_report(report(config.run_dir))
    return 0


def _results(args: argparse.Namespace) -> int:
    from nas.experiment import RunFolder, measure_best, report, run_machine_warnings

    run = RunFolder.open(args.run)
    for line in run_machine_warnings(run):  # `nas search` says these at its start
        print(f"warning: {line}", file=sys.stderr, flush=True)
    _print_report(report(run, export_best=args.export_best, budget_ms=args.budget_ms))
    if args.measure:
        for m in measure_best(run, args.budget_ms):
            print(f"best arch (trial {m['trial']}, {m['strategy']}): accuracy {m['accuracy']:.4f}, latency on "
                  f"{m['table']}: predicted {m['predicted_ms']:.3f} ms, measured {m['measured_ms']:.3f} ms "
                  f"({m['error_pct']:+.1f}%); table check here: {m['check']} ({m['check_reason']})")
    return 0


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
                  f"at {p['result']['latency_ms'][table]:.4g} ms on {table} (predicted)")
        print("\nhypervolume per strategy (same reference point):")
        print(rep.hypervolume.to_string(index=False))
    print(f"\ntrials: {rep.csv_path}\nplot:   {rep.plot_path}")
    if rep.exported:
        print(f"best arch: {rep.exported}")
