"""Results of a multi-device search: a winner per device, one arch JSON per device, each winner
measured on every table that can be measured here (the cross-device matrix).

A run whose meta.json lists two or more resolved ``budgets`` is a multi-device run. Its winner for
device i is, for goal ``per_device``, the most accurate completed trial within device i's budget on
device i's table; for goal ``joint``, the most accurate trial within every budget (the same arch for
every device). Ties go to the faster arch on that device's table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from nas._arch import Arch
from nas._atomic import atomic_write


def _col(table: str) -> str:
    return f"latency_ms[{table}]"


def device_winners(df: pd.DataFrame, budgets: Sequence[dict[str, Any]], goal: str) -> pd.DataFrame:
    """One row per budgeted device: its winner (see the module docstring) with its accuracy, its
    latency on every budgeted table and whether it meets each budget; ``trial`` None when no
    completed trial qualifies."""
    done = df[df.state == "COMPLETE"]
    within = {b["table"]: done[_col(b["table"])] <= (b["budget_ms"] if b["budget_ms"] is not None else np.inf)
              for b in budgets}
    every = np.logical_and.reduce(list(within.values())) if within else np.ones(len(done), bool)
    rows = []
    for b in budgets:
        table = b["table"]
        pool = done[every] if goal == "joint" else done[within[table]]
        row: dict[str, Any] = {"device": table, "budget_ms": b["budget_ms"], "goal": goal}
        if pool.empty:
            rows.append({**row, "trial": None, "strategy": None, "accuracy": np.nan,
                         "arch_short": "(none within budget)", "arch": ""})
            continue
        best = pool.sort_values(["accuracy", _col(table)], ascending=[False, True]).iloc[0]
        row.update({"trial": int(best.trial), "strategy": best.strategy, "accuracy": float(best.accuracy)})
        for other in budgets:
            row[_col(other["table"])] = float(best[_col(other["table"])])
        row["meets"] = ",".join(o["table"] for o in budgets if bool(within[o["table"]].loc[best.name]))
        rows.append({**row, "arch_short": best.arch_short, "arch": best.arch})
    return pd.DataFrame(rows)


def export_winners(winners: pd.DataFrame, folder: str | Path) -> list[Path]:
    """Write each device's winner as ``FOLDER/<device>.json`` (the format `nas extract --arch` reads)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for w in winners.itertuples():
        if not w.arch:
            continue
        path = folder / f"{w.device}.json"
        atomic_write(path, Arch.from_json(w.arch).to_json(indent=1) + "\n")
        out.append(path)
    return out


def measurable_sources(sources: Sequence[Any]) -> tuple[list[Any], dict[str, str]]:
    """The table sources whose backend runs here, and why each other source cannot be measured."""
    from nas.evaluators import TableLatency
    from nas.latency import backend_unavailable_reason

    ok, skipped = [], {}
    for s in sources:
        if not isinstance(s, TableLatency):
            skipped[s.name] = "not a measured table (a stand-in)"
            continue
        backend = s.table.metadata.get("backend")
        reason = backend_unavailable_reason(backend) if backend else "the table names no backend"
        if reason:
            skipped[s.name] = reason
        else:
            ok.append(s)
    return ok, skipped


def measure_winners(winners: pd.DataFrame, space: Any, sources: Sequence[Any], work: str | Path,
                    budgets: Sequence[dict[str, Any]] = (), passes: int | None = None, progress: bool = False
                    ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Each device's winner measured end to end on every table measurable here (its backend, threads and
    protocol; `passes` independent passes, default 7 as in calibration): one row per (winner, table)
    with predicted and measured ms and, where the table carries a budget, whether the measurement meets
    it. A table measured on another machine is named on stderr (`warn_if_foreign`). Also returns the
    tables skipped and why. Run under the CPU lock for valid figures."""
    from nas.latency import measure_archs, warn_if_foreign

    sources, skipped = measurable_sources(sources)
    budget = {b["table"]: b["budget_ms"] for b in budgets}
    picked = [(w.device, Arch.from_json(w.arch), w.accuracy) for w in winners.itertuples() if w.arch]
    unique = list(dict.fromkeys(a for _, a, _ in picked))
    rows = []
    for s in sources:
        warn_if_foreign(s.table)
        measured = measure_archs(unique, space, s.table, Path(work) / s.name, progress=progress,
                                 **({"passes": passes} if passes else {}))
        predicted = s.predict_many(unique)
        by_arch = {a: (float(m), float(p)) for a, m, p in zip(unique, measured, predicted)}
        for device, arch, acc in picked:
            m, p = by_arch[arch]
            b = budget.get(s.name)
            rows.append({"winner_for": device, "measured_on": s.name, "accuracy": float(acc), "predicted_ms": p,
                         "measured_ms": m, "error_pct": 100 * (p - m) / m, "budget_ms": b,
                         "meets_budget": None if b is None else bool(m <= b), "arch_short": arch.short()})
    return pd.DataFrame(rows), skipped


def verify_winners(df: pd.DataFrame, winners: pd.DataFrame, budgets: Sequence[dict[str, Any]], space: Any,
                   sources: Sequence[Any], work: str | Path, candidates: int = 5, passes: int | None = None,
                   rounds: int = 3) -> tuple[pd.DataFrame, list[str]]:
    """Winners checked on their own device: each per-device winner is measured on its device's table
    (when measurable here); one that measures over its budget is replaced by the most accurate trial that
    measures within it. Candidates are tried best first, `candidates` per round. When a round finds none,
    the next round corrects the table by the bias it showed on these archs (median measured / predicted,
    when above 1) and tries the most accurate trials the corrected table puts within the budget; at most
    `rounds` rounds. Returns the winners (``verified_ms`` added) and one line per replacement or failure."""
    from nas.latency import measure_archs

    out, notes = winners.copy(), []
    out["verified_ms"] = np.nan
    if (out.goal == "joint").any():
        return out, ["goal joint: one winner for every budget, not replaced (measure it with measure_winners)"]
    by_name = {s.name: s for s in measurable_sources(sources)[0]}
    done = df[df.state == "COMPLETE"].sort_values(["accuracy"], ascending=False, kind="stable").drop_duplicates("arch")
    limit = {o["table"]: o["budget_ms"] if o["budget_ms"] is not None else np.inf for o in budgets}
    for i, w in out.iterrows():
        source, b = by_name.get(w.device), w.budget_ms
        if source is None or not w.arch or b is None:
            continue
        col = _col(w.device)
        measured: dict[str, float] = {}  # arch JSON -> measured ms
        bias, best = 1.0, None
        for r in range(rounds):
            pool = done[(done[col] * bias <= b) & ~done.arch.isin(list(measured))]
            pool = pool.sort_values(["accuracy", col], ascending=[False, True]).head(candidates)
            if pool.empty:
                break
            ms = measure_archs([Arch.from_json(a) for a in pool.arch], space, source.table,
                               Path(work) / f"verify-{w.device}", progress=False, **({"passes": passes} if passes else {}))
            measured.update(zip(pool.arch, map(float, ms)))
            fits = [k for k, m in enumerate(ms) if m <= b]
            if fits:
                best = pool.iloc[fits[0]]
                break
            seen = done[done.arch.isin(list(measured))]
            bias = max(1.0, float(np.median([measured[a] / p for a, p in zip(seen.arch, seen[col])])))
            notes.append(f"{w.device}: round {r + 1}: none of {len(pool)} candidates measures within {b:.4g} ms "
                         f"(fastest {float(np.min(ms)):.4g} ms); the table predicts these archs {bias:.3f}x too fast")
        if best is None:
            notes.append(f"{w.device}: no trial measured within {b:.4g} ms after {len(measured)} measurements; "
                         f"winner kept")
            out.at[i, "verified_ms"] = measured.get(w.arch, np.nan)
            continue
        if int(best.trial) != w.trial:
            was = f"measures {measured[w.arch]:.4g} ms" if w.arch in measured else "was not among the candidates"
            notes.append(f"{w.device}: trial {w.trial} {was}, over its {b:.4g} ms budget; replaced by trial "
                         f"{int(best.trial)} ({best.accuracy:.4f}, {measured[best.arch]:.4g} ms measured)")
        for other in budgets:
            out.at[i, _col(other["table"])] = float(best[_col(other["table"])])
        out.at[i, "meets"] = ",".join(t for t in limit if best[_col(t)] <= limit[t])
        out.loc[i, ["trial", "strategy", "accuracy", "arch_short", "arch"]] = [
            int(best.trial), best.strategy, float(best.accuracy), best.arch_short, best.arch]
        out.at[i, "verified_ms"] = measured[best.arch]
    return out, notes


def matrix(measured: pd.DataFrame, value: str = "measured_ms") -> pd.DataFrame:
    """The cross-device matrix: rows the winner for device i, columns the table it was measured on."""
    return measured.pivot_table(index="winner_for", columns="measured_on", values=value, sort=False)


def check_matrix(measured: pd.DataFrame) -> list[str]:
    """The acceptance of issue #15 on a measured matrix, one line per failure ([] when it holds): each
    device's winner meets its own budget when measured; on device j, j's winner is at least as accurate
    as every other device's winner that also meets j's budget when measured."""
    out = []
    for j, on_j in measured.groupby("measured_on", sort=False):
        own = on_j[on_j.winner_for == j]
        if own.empty or own.budget_ms.isna().all():
            continue
        own = own.iloc[0]
        if not own.meets_budget:
            out.append(f"{j}'s winner measures {own.measured_ms:.4g} ms on {j}, over its budget {own.budget_ms:.4g} ms")
        for r in on_j[(on_j.winner_for != j) & (on_j.meets_budget == True)].itertuples():  # noqa: E712
            if r.accuracy > own.accuracy:
                out.append(f"on {j}, {r.winner_for}'s winner ({r.accuracy:.4f}, {r.measured_ms:.4g} ms) is more "
                           f"accurate than {j}'s own ({own.accuracy:.4f}) within {j}'s budget")
    return out


def matrix_figure(measured: pd.DataFrame) -> Any:
    """A heat map of the matrix: each cell the winner's measured latency relative to the column's budget
    (green within, red over), annotated with ms and the winner's accuracy. A matplotlib Figure (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = matrix(measured)
    budget = measured.groupby("measured_on", sort=False).budget_ms.first().reindex(ms.columns)
    acc = measured.groupby("winner_for", sort=False).accuracy.first().reindex(ms.index)
    rel = ms / budget.values[None, :]
    fig, ax = plt.subplots(figsize=(1.9 * len(ms.columns) + 2.5, 0.9 * len(ms.index) + 1.8))
    im = ax.imshow(rel.values.astype(float), cmap="RdYlGn_r", vmin=0.6, vmax=1.4)
    for i in range(len(ms.index)):
        for j in range(len(ms.columns)):
            v = ms.values[i, j]
            if np.isfinite(v):
                ax.text(j, i, f"{v:.3g} ms", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(ms.columns)), [f"{c}\nbudget {b:.3g} ms" if np.isfinite(b) else c
                                           for c, b in zip(ms.columns, budget.values.astype(float))], fontsize=8)
    ax.set_yticks(range(len(ms.index)), [f"winner for {r}\nacc {a:.4f}" for r, a in zip(ms.index, acc)], fontsize=8)
    ax.set_xlabel("measured on")
    fig.colorbar(im, ax=ax, label="measured / budget")
    fig.tight_layout()
    return fig
