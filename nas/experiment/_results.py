"""Results of a run: one pandas table of all trials, best archs per budget, Pareto plot, hypervolume."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas._arch import Arch
from nas._atomic import atomic_path, atomic_write
from nas._errors import HwnasError
from nas.experiment._build import build_latency, build_space, machine_warnings
from nas.experiment._config import ConfigError, ExperimentConfig
from nas.experiment._pareto import hypervolume, pareto_mask
from nas.experiment._results_dtype import dtype_pairs, dtype_report
from nas.experiment._results_multi import device_winners, export_winners, verify_winners
from nas.experiment._rundir import RunFolder
from nas.experiment._standins import StandIns
from nas.experiment._storage import open_storage, storage_url, study_name


def trials_table(config: ExperimentConfig) -> pd.DataFrame:
    """Every trial of every strategy: objectives, latency per table, timings, worker, arch JSON."""
    import optuna

    storage = open_storage(storage_url(config))
    rows = []
    for sc, repeat in ((sc, r) for sc in config.strategies for r in range(1, config.search.seeds + 1)):
        try:
            study = optuna.load_study(study_name=study_name(config, sc, repeat), storage=storage)
        except KeyError:
            continue
        for t in study.get_trials(deepcopy=False):
            res = t.user_attrs.get("result") or {}
            rec = t.user_attrs.get("record") or {}
            who = t.user_attrs.get("worker") or {}
            row: dict[str, Any] = {
                "strategy": sc.key, "seed": repeat, "trial": t.number, "state": t.state.name,
                "accuracy": res.get("accuracy", np.nan), "reward": rec.get("reward", np.nan),
                "params": res.get("params", np.nan), "macs": res.get("macs", np.nan),
                "ask_seconds": rec.get("ask_seconds", np.nan), "eval_seconds": rec.get("eval_seconds", np.nan),
                "worker": f"{who.get('host', '?')}:{who.get('pid', '?')}",
                "started": t.datetime_start, "completed": t.datetime_complete,
                "fail_reason": t.user_attrs.get("fail_reason", ""),
                "arch_short": rec.get("arch_short", ""), "arch": t.user_attrs.get("arch", "")}
            for name, ms in (res.get("latency_ms") or {}).items():
                row[f"latency_ms[{name}]"] = ms
            for name, value in (res.get("extra") or {}).items():  # e.g. accuracy_int8 beside accuracy
                if name not in row and isinstance(value, (int, float)):
                    row[name] = value
            rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        raise ConfigError(f"run {config.run_dir!r} has no trials yet")
    return df


def latency_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("latency_ms[")]


def default_budgets(df: pd.DataFrame, configured: list[float]) -> dict[str, list[float]]:
    """Budgets per latency column: the configured ones on the primary table, else (and on the
    other tables) the 25/50/75% latency quantiles of the completed trials."""
    done = df[df.state == "COMPLETE"]
    out = {}
    for i, col in enumerate(latency_columns(df)):
        if i == 0 and configured:
            out[col] = list(configured)
        else:
            out[col] = [float(f"{done[col].quantile(q):.3g}") for q in (0.25, 0.5, 0.75)]
    return out


def binomial_noise95(accuracy: float, images: float, other: float | None = None) -> float:
    """95% half-width of an accuracy measured on `images` images (binomial); with `other`, of the
    difference of two accuracies on as many images each (unpaired: an upper bound for the same images)."""
    var = accuracy * (1 - accuracy) + (0.0 if other is None else other * (1 - other))
    return float(1.959964 * np.sqrt(var / images))


def best_under_budgets(df: pd.DataFrame, budgets_ms: list[float] | dict[str, list[float]]) -> pd.DataFrame:
    """For each table and budget, the most accurate completed arch within it (any strategy), with
    ``acc_noise95``, the binomial 95% half-width of its accuracy, when the evaluator recorded how
    many images it measured (``val_images``)."""
    done = df[df.state == "COMPLETE"]
    rows = []
    for col in latency_columns(df):
        for budget in (budgets_ms.get(col, []) if isinstance(budgets_ms, dict) else budgets_ms):
            within = done[done[col] <= budget]
            if within.empty:
                rows.append({"table": col[11:-1], "budget_ms": budget, "strategy": None, "trial": None,
                             "accuracy": np.nan, "latency_ms": np.nan, "arch_short": "(none within budget)"})
                continue
            best = within.sort_values(["accuracy", col], ascending=[False, True]).iloc[0]
            noise = {"acc_noise95": binomial_noise95(best.accuracy, best.val_images)} \
                if "val_images" in best.index and best.val_images > 0 else {}
            rows.append({"table": col[11:-1], "budget_ms": budget, "strategy": best.strategy, "trial": int(best.trial),
                         "accuracy": best.accuracy, **noise, "latency_ms": best[col], "arch_short": best.arch_short,
                         "arch": best.arch})
    return pd.DataFrame(rows)


def _by_seed(done: pd.DataFrame) -> list[str]:
    return ["strategy", "seed"] if "seed" in done.columns and done.seed.nunique() > 1 else ["strategy"]


def hypervolume_table(df: pd.DataFrame, presets: dict[str, Any] | None = None) -> pd.DataFrame:
    """Hypervolume (accuracy × ms dominated) per strategy (and seed, with `search.seeds` > 1) and table,
    with a shared reference point: the worst accuracy and latency among all completed trials of the run."""
    done = df[df.state == "COMPLETE"]
    by = _by_seed(done)
    rows = []
    for col in latency_columns(df):
        ref_acc, ref_lat = float(done.accuracy.min()), float(done[col].max()) * 1.0001
        for key, group in done.groupby(by, sort=False):
            key = key if isinstance(key, tuple) else (key,)
            rows.append({"table": col[11:-1], **dict(zip(by, key)), "trials": len(group),
                         "hypervolume": hypervolume(group.accuracy.values, group[col].values, ref_acc, ref_lat),
                         "best_accuracy": float(group.accuracy.max()),
                         "pareto_points": int(pareto_mask(group.accuracy.values, group[col].values).sum())})
    return pd.DataFrame(rows)


def hypervolume_summary(hv: pd.DataFrame, baseline: str = "random") -> pd.DataFrame | None:
    """Per table and strategy over seeds: hypervolume mean ± std (sample std), and against `baseline`
    (random search) seed by seed: the mean paired difference and on how many seeds the strategy beats
    it. None when the run has one seed per strategy."""
    if "seed" not in hv.columns:
        return None
    rows = []
    for (table, strategy), group in hv.groupby(["table", "strategy"], sort=False):
        row = {"table": table, "strategy": strategy, "seeds": len(group), "hypervolume_mean": group.hypervolume.mean(),
               "hypervolume_std": group.hypervolume.std(ddof=1) if len(group) > 1 else np.nan,
               "best_accuracy_mean": group.best_accuracy.mean()}
        base = hv[(hv.table == table) & (hv.strategy == baseline)].set_index("seed").hypervolume
        if strategy != baseline and not base.empty:
            paired = group.set_index("seed").hypervolume.sub(base).dropna()
            row.update({f"vs_{baseline}_mean": paired.mean(), f"vs_{baseline}_std": paired.std(ddof=1)
                        if len(paired) > 1 else np.nan, f"beats_{baseline}": f"{int((paired > 0).sum())}/{len(paired)}"})
        rows.append(row)
    return pd.DataFrame(rows)


def pareto_figure(df: pd.DataFrame, presets: dict[str, Any], budgets_ms: dict[str, list[float]],
                  stand_ins: StandIns | None = None) -> Any:
    """Latency vs accuracy, one panel per table, one colour per strategy (front as a line),
    presets as labelled stars, budgets as dashed lines; axes name the stand-ins (MACs proxy,
    synthetic accuracy). A matplotlib Figure (Agg); close it when done."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stand_ins = stand_ins or StandIns()
    done = df[df.state == "COMPLETE"]
    cols = latency_columns(df)
    ncols = min(len(cols), 2 if len(cols) == 4 else 3)  # small multiples: at most 3 panels a row
    nrows = -(-len(cols) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 4.8 * nrows), squeeze=False)
    for ax in axes.flat[len(cols):]:
        ax.set_visible(False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, col in zip(axes.flat, cols):
        table = col[11:-1]
        for i, (key, group) in enumerate(done.groupby("strategy", sort=False)):
            c = colors[i % len(colors)]
            ax.scatter(group[col], group.accuracy, s=9, alpha=0.35, color=c)
            seeds = list(group.groupby("seed", sort=True)) if "seed" in group.columns else [(None, group)]
            for j, (_, run) in enumerate(seeds):  # one front per seed: the first bold, the others thin
                front = run[pareto_mask(run.accuracy.values, run[col].values)].sort_values(col)
                label = f"{key} ({len(group)}{f', {len(seeds)} seeds' if len(seeds) > 1 else ''})" if j == 0 else None
                ax.step(front[col], front.accuracy, where="post", color=c, lw=1.8 if j == 0 else 0.8,
                        alpha=1.0 if j == 0 else 0.6, label=label)
        for name, p in presets.items():
            if "result" not in p or table not in p["result"]["latency_ms"]:
                continue
            x, y = p["result"]["latency_ms"][table], p["result"]["accuracy"]
            ax.scatter([x], [y], marker="*", s=160, color="black", zorder=5)
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        for b in budgets_ms.get(col, []):
            ax.axvline(b, ls="--", color="gray", lw=1)
        ax.set_xlabel(stand_ins.latency_label(table))
        ax.set_ylabel(stand_ins.accuracy_label())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    title = getattr(df, "attrs", {}).get("title")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def pareto_plot(df: pd.DataFrame, presets: dict[str, Any], path: str | Path,
                budgets_ms: dict[str, list[float]], stand_ins: StandIns | None = None) -> Path:
    """`pareto_figure` written (atomically) to `path`."""
    import matplotlib.pyplot as plt

    fig = pareto_figure(df, presets, budgets_ms, stand_ins)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)
    return Path(path)


@dataclass
class RunReport:
    trials: pd.DataFrame
    best: pd.DataFrame
    hypervolume: pd.DataFrame
    csv_path: Path
    plot_path: Path
    exported: Path | None
    presets: dict[str, Any]
    """Reference archs evaluated by the run (presets.json): name -> arch, result (or error)."""
    stand_ins: StandIns
    """The run's stand-ins (MACs proxy, synthetic accuracy): `notice()` is "" when there are none."""
    winners: pd.DataFrame | None = None
    """A multi-device run's winner per device (`device_winners`; winners.csv); None for one budget."""
    exported_per_device: list[Path] | None = None
    """A multi-device run's `--export-best DIR`: one arch JSON per device."""
    hypervolume_summary: pd.DataFrame | None = None
    """With `search.seeds` > 1: hypervolume mean ± std per strategy and its paired comparison to random
    search (`hypervolume_summary`; hypervolume_summary.csv)."""
    dtype_plot: Path | None = None
    """dtypes.png when the run has float32 and int8 tables of one backend (`dtype_report`)."""
    dtype_ratios: pd.DataFrame | None = None
    """int8/float32 speed-up across the space per table pair (dtype_ratio.csv)."""


def report(run: str | Path | RunFolder, export_best: str | Path | None = None, budget_ms: float | None = None
           ) -> RunReport:
    """Write trials.csv, hypervolume.csv and pareto.png in the run folder; optionally export the best arch
    (within `budget_ms`, default the budget the search used, from meta.json). A multi-device run (two or
    more budgets in meta.json) also writes winners.csv (`device_winners`), marks each device's budget on
    its panel, and `export_best` is a folder receiving one arch JSON per device."""
    run = run if isinstance(run, RunFolder) else RunFolder.open(run)
    config, folder = run.config, run.path
    df = trials_table(config)
    if not (df.state == "COMPLETE").any():
        states = ", ".join(f"{n} {s.lower()}" for s, n in df.state.value_counts().items())
        raise ConfigError(f"run {str(folder)!r} has no completed trials yet ({states})")
    df.attrs["title"] = f"{config.name}: {config.space.name} r{','.join(map(str, config.space.resolutions or []))}, " \
                        f"{config.evaluator.name} accuracy"
    csv_path = folder / "trials.csv"
    atomic_write(csv_path, df.to_csv(index=False))
    configured = list(config.results.budgets_ms) or ([run.budget_ms] if run.budget_ms else [])
    budgets = default_budgets(df, configured)
    for b in run.budgets:  # a multi-device run: each device's own budget on its table
        col = f"latency_ms[{b['table']}]"
        if b["budget_ms"] is not None and col in budgets:
            extra = config.results.budgets_ms if col == latency_columns(df)[0] else []
            budgets[col] = sorted({*extra, b["budget_ms"]})
    best = best_under_budgets(df, budgets)
    presets_path = folder / "presets.json"
    presets = json.loads(presets_path.read_text()) if presets_path.is_file() else {}
    hv = hypervolume_table(df)
    hv.to_csv(folder / "hypervolume.csv", index=False)
    hv_summary = hypervolume_summary(hv)
    if hv_summary is not None:
        hv_summary.to_csv(folder / "hypervolume_summary.csv", index=False)
    best.drop(columns=["arch"], errors="ignore").to_csv(folder / "best.csv", index=False)
    stand_ins = StandIns.of(config)
    plot = pareto_plot(df, presets, folder / "pareto.png", budgets, stand_ins)
    dtypes = None
    if dtype_pairs(run.meta.get("tables") or []):
        space = build_space(config)
        dtypes = dtype_report(df, run.meta["tables"], build_latency(config, space), space, folder)
    exported, winners, per_device = None, None, None
    if len(run.budgets) >= 2:
        winners = device_winners(df, run.budgets, run.goal or "joint")
        winners.drop(columns=["arch"]).to_csv(folder / "winners.csv", index=False)
        if export_best is not None:
            per_device = export_winners(winners, export_best)
            exported = Path(export_best)
    elif export_best is not None:
        exported = export_best_arch(df, export_best, budget_ms if budget_ms is not None else run.budget_ms)
    return RunReport(df, best, hv, csv_path, plot, exported, presets, stand_ins, winners, per_device,
                     hv_summary, *(dtypes or (None, None)))


def run_machine_warnings(run: RunFolder) -> list[str]:
    """One line per latency table of the run measured on another machine than this one."""
    try:
        return machine_warnings(build_latency(run.config, build_space(run.config)))
    except HwnasError as err:  # a table moved or deleted since the search: say so, report the rest
        return [f"the run's latency tables cannot be read here ({err})"]


def best_arch(df: pd.DataFrame, budget_ms: float | None = None) -> pd.Series:
    """The row of the most accurate completed arch (within `budget_ms` on the primary table)."""
    done = df[df.state == "COMPLETE"]
    col = latency_columns(df)[0]
    if budget_ms is not None:
        done = done[done[col] <= budget_ms]
    if done.empty:
        raise ConfigError(f"no completed trial within {budget_ms} ms on {col[11:-1]}")
    return done.sort_values(["accuracy", col], ascending=[False, True]).iloc[0]


def verify_best(run: RunFolder, df: pd.DataFrame, winners: pd.DataFrame | None, budget_ms: float | None = None,
                candidates: int = 5, work: str | Path | None = None) -> tuple[pd.DataFrame, list[str]]:
    """`verify_winners` for any run: a multi-device run's `winners`, or a one-budget run's best arch
    within `budget_ms` (default the search's) on its primary table. Measures on this machine; run
    under the CPU lock."""
    space = build_space(run.config)
    sources = build_latency(run.config, space)
    budgets = run.budgets
    if winners is None:
        budget_ms = budget_ms if budget_ms is not None else run.budget_ms
        if budget_ms is None:
            raise ConfigError(f"run {str(run.path)!r} has no budget to verify against; pass --budget-ms")
        budgets = [{"table": sources[0].name, "budget_ms": budget_ms}]
        winners = device_winners(df, budgets, "per_device")
    return verify_winners(df, winners, budgets, space, sources, Path(work or run.path / ".verify"), candidates)


def measure_best(run: RunFolder, budget_ms: float | None = None, work: str | Path | None = None,
                 arch_json: str | None = None) -> list[dict[str, Any]]:
    """Measure the best arch end to end on each table's backend (threads, protocol of the table):
    predicted vs measured ms, whether the measurement meets the budget (primary table), and
    `nas latency check`'s verdict on the table here. `arch_json`: that trial's arch instead (a
    verified winner, `verify_best`). Run under the CPU
    lock for valid figures."""
    from nas.evaluators import TableLatency
    from nas.latency import check_table, measure_archs

    config = run.config
    work = Path(work or run.path / ".measure")
    budget_ms = budget_ms if budget_ms is not None else run.budget_ms
    df = trials_table(config)
    row = best_arch(df, budget_ms) if arch_json is None else df[df.arch == arch_json].iloc[0]
    arch = Arch.from_json(row.arch)
    space = build_space(config)
    out = []
    for i, source in enumerate(build_latency(config, space)):
        if not isinstance(source, TableLatency):
            continue
        measured = float(measure_archs([arch], space, source.table, work, progress=False)[0])
        predicted = float(source.predict_many([arch])[0])
        verdict = check_table(source.table, space, work / "check", progress=False)
        out.append({"table": source.name, "trial": int(row.trial), "strategy": row.strategy,
                    "accuracy": float(row.accuracy), "predicted_ms": predicted, "measured_ms": measured,
                    "error_pct": 100 * (predicted - measured) / measured, "check": verdict.verdict,
                    "check_reason": verdict.reason, "budget_ms": budget_ms if i == 0 else None,
                    "meets_budget": None if i > 0 or budget_ms is None else bool(measured <= budget_ms)})
    return out


def export_best_arch(df: pd.DataFrame, path: str | Path, budget_ms: float | None = None) -> Path:
    """Write the most accurate completed arch (within `budget_ms` on the primary table) as JSON,
    the format `nas extract --arch` and `nas model summary` read."""
    arch = Arch.from_json(best_arch(df, budget_ms).arch)
    atomic_write(path, arch.to_json(indent=1) + "\n")
    return Path(path)
