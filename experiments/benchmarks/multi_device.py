"""The cross-device matrix (issue #15): does specializing for a device pay on that device? One command:

    python experiments/benchmarks/multi_device.py [--run runs/multi_device] [--passes 7] [--verify K]
        [--out experiments/benchmarks/multi_device.csv]

Reads a finished multi-device run (experiments/multi_device.yaml), takes each device's winner and
measures it end to end on every device's table that can be measured here (the table's backend,
threads and protocol, `--passes` independent passes). Prints the matrix (measured ms, the budget,
the winner's accuracy), the acceptance (each winner within its own budget when measured; on device j
no other winner within j's budget is more accurate than j's own), what specializing bought on each
device (accuracy of j's winner minus the best other winner that fits j's budget; latency of j's winner
against the others' of at least its accuracy), and Kendall's tau between the tables over 1000 random
archs. Writes the matrix as a CSV and a heat map (the CSV's name with .png).

--verify K (per_device runs): first measure each winner on its own device; one over its budget is
replaced by the most accurate trial that measures within it (K candidates per round; a round that finds
none corrects the table by the bias its candidates showed; `nas.experiment.verify_winners`, as
`nas results --verify K`).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from _results import write_csv

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    import pandas as pd
    from scipy.stats import kendalltau

    from nas.experiment import (RunFolder, build_latency, build_space, check_matrix, device_winners, matrix,
                                matrix_figure, measure_winners, trials_table, verify_winners)

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=str(ROOT / "runs/multi_device"), help="a finished multi-device run folder")
    parser.add_argument("--passes", type=int, default=7, help="independent passes per network and table")
    parser.add_argument("--verify", type=int, default=0, metavar="K",
                        help="replace a winner over its own budget when measured (K candidates; 0: off)")
    parser.add_argument("--out", default=str(ROOT / "experiments/benchmarks/multi_device.csv"))
    args = parser.parse_args(argv)
    run = RunFolder.open(args.run)
    if len(run.budgets) < 2:
        parser.error(f"{args.run} is not a multi-device run (meta.json lists {len(run.budgets)} budget(s))")
    space = build_space(run.config)
    sources = build_latency(run.config, space)
    trials = trials_table(run.config)
    winners = device_winners(trials, run.budgets, run.goal or "joint")
    t0 = time.perf_counter()
    if args.verify:
        winners, notes = verify_winners(trials, winners, run.budgets, space, sources, run.path / ".verify",
                                        candidates=args.verify, passes=args.passes)
        for line in notes or ["every winner measures within its own budget"]:
            print(f"verify: {line}")
    measured, skipped = measure_winners(winners, space, sources, run.path / ".matrix", run.budgets,
                                        passes=args.passes, progress=False)
    seconds = time.perf_counter() - t0
    for table, why in skipped.items():
        print(f"not measured on {table}: {why}")
    budget = {b["table"]: b["budget_ms"] for b in run.budgets}
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"goal {run.goal}; budgets: " + ", ".join(f"{t} {b:.4g} ms" for t, b in budget.items()))
        print(f"\nmeasured ms ({args.passes} passes, {seconds:.0f} s), winner for device i (rows) on device j (columns):")
        shown = matrix(measured).round(4)
        shown.insert(0, "accuracy", winners.set_index("device").accuracy.reindex(shown.index).round(4))
        print(shown.to_string())
        print("\nmeasured / budget:")
        print((matrix(measured) / pd.Series(budget)).round(3).to_string())
        print("\npredicted error % (predicted vs measured):")
        print(matrix(measured, "error_pct").round(2).to_string())
    failures = check_matrix(measured)
    print("\nacceptance: " + ("holds" if not failures else "FAILS"))
    for line in failures:
        print(f"  {line}")
    print("\nwhat specializing bought, per device j (measured on j):")
    for j, on_j in measured.groupby("measured_on", sort=False):
        own = on_j[on_j.winner_for == j]
        if own.empty:
            continue
        own = own.iloc[0]
        others = on_j[(on_j.winner_for != j) & (on_j.arch_short != own.arch_short)]
        fit = others[others.meets_budget == True]  # noqa: E712
        gain = (f"+{own.accuracy - fit.accuracy.max():.4f} accuracy over the best other winner within budget "
                f"({fit.loc[fit.accuracy.idxmax()].winner_for})" if len(fit) else "no other winner fits its budget")
        rival = others[others.accuracy >= own.accuracy]
        speed = (f"; others at >= its accuracy run {rival.measured_ms.min() / own.measured_ms:.3f}x its latency"
                 if len(rival) else "")
        same = on_j[(on_j.winner_for != j) & (on_j.arch_short == own.arch_short)].winner_for.tolist()
        print(f"  {j}: {gain}{speed}" + (f" (same arch as the winner for {', '.join(same)})" if same else ""))
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(1000)]
    pred = {s.name: s.predict_many(archs) for s in sources}
    print("\nKendall tau between the tables over 1000 random archs:")
    for a, b in itertools.combinations(pred, 2):
        print(f"  {a} vs {b}: {kendalltau(pred[a], pred[b]).statistic:.3f}")
    rows = [{**r, "passes": args.passes, "goal": run.goal, "verify": args.verify} for r in measured.to_dict("records")]
    out = write_csv(rows, args.out)
    fig = matrix_figure(measured)
    fig.savefig(Path(out).with_suffix(".png"), dpi=120)
    print(f"wrote {Path(out).with_suffix('.png')}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
