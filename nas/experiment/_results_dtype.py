"""float32 and int8 in one picture: a run whose tables include both dtypes of one backend.

`dtype_pairs` pairs each int8 table of a run with the float32 table of the same backend and threads.
For each pair, `dtype_report` puts both Pareto fronts of the run's trials on one axis (the float32
front with ``accuracy_float32`` where a search scored in simulated int8 recorded it, else both with
the search's ``accuracy``) and shows the int8/float32 speed-up across the space: the ratio of the two
tables' predictions for `SPACE_ARCHS` seeded random archs (dtypes.png, dtype_ratio.csv).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from nas._atomic import atomic_path, atomic_write
from nas.experiment._pareto import pareto_mask

SPACE_ARCHS = 1000
"""Random archs behind the int8/float32 speed-up distribution (seed `SPACE_SEED`)."""
SPACE_SEED = 0


def dtype_pairs(tables: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(float32 table, int8 table) names from a run's table metadata (meta.json ``tables``): each
    int8 table with the first float32 table of the same backend and thread count."""
    def key(t: dict[str, Any]) -> tuple[Any, Any]:
        return t.get("backend"), t.get("threads")

    measured = [t for t in tables if t.get("kind") == "latency table"]
    fp32 = [t for t in measured if t.get("dtype", "float32") == "float32"]
    pairs = []
    for t in measured:
        if t.get("dtype") == "int8":
            match = next((f for f in fp32 if key(f) == key(t)), None)
            if match is not None:
                pairs.append((match["name"], t["name"]))
    return pairs


def accuracy_column(df: pd.DataFrame, dtype: str) -> str:
    """The trials' accuracy for `dtype`: ``accuracy_<dtype>`` when the evaluator recorded it."""
    col = f"accuracy_{dtype}"
    return col if col in df.columns and df[col].notna().any() else "accuracy"


def space_ratios(sources: Sequence[Any], space: Any, pair: tuple[str, str], n: int = SPACE_ARCHS,
                 seed: int = SPACE_SEED) -> np.ndarray:
    """int8 / float32 predicted latency of `n` seeded random archs of `space` (calibrated tables)."""
    by_name = {s.name: s for s in sources}
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(n)]
    fp32, int8 = (np.asarray(by_name[name].predict_many(archs), dtype=float) for name in pair)
    return int8 / fp32


def ratio_summary(pair: tuple[str, str], ratios: np.ndarray) -> dict[str, Any]:
    return {"float32_table": pair[0], "int8_table": pair[1], "archs": len(ratios),
            "median": float(np.median(ratios)), "p5": float(np.percentile(ratios, 5)),
            "p95": float(np.percentile(ratios, 95)), "slower_in_int8_pct": float(100 * np.mean(ratios > 1))}


def dtype_figure(df: pd.DataFrame, pairs: Sequence[tuple[str, str]], ratios: Sequence[np.ndarray]) -> Any:
    """One row per pair: both fronts on one axis (left), the speed-up histogram (right). A
    matplotlib Figure (Agg); close it when done."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = df[df.state == "COMPLETE"]
    fig, axes = plt.subplots(len(pairs), 2, figsize=(13, 4.8 * len(pairs)), squeeze=False)
    for (ax, hist), pair, r in zip(axes, pairs, ratios):
        for name, dtype, color in ((pair[0], "float32", "tab:blue"), (pair[1], "int8", "tab:orange")):
            col, acc = f"latency_ms[{name}]", accuracy_column(done, dtype)
            ax.scatter(done[col], done[acc], s=8, alpha=0.25, color=color)
            front = done[pareto_mask(done[acc].values, done[col].values)].sort_values(col)
            ax.step(front[col], front[acc], where="post", color=color, lw=2,
                    label=f"{dtype}: {name} ({'accuracy' if acc == 'accuracy' else acc})")
        ax.set_xlabel("predicted latency (ms)")
        ax.set_ylabel("accuracy")
        ax.set_title("Pareto fronts of one search, float32 vs int8")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        hist.hist(r, bins=40, color="tab:green", alpha=0.8)
        hist.axvline(1.0, color="black", lw=1)
        hist.axvline(float(np.median(r)), color="tab:red", ls="--", lw=1.5, label=f"median {np.median(r):.3f}")
        hist.set_xlabel(f"int8 / float32 predicted latency ({len(r)} random archs; < 1: int8 faster)")
        hist.set_ylabel("archs")
        hist.set_title(f"speed-up across the space: {pair[1]} vs {pair[0]}")
        hist.grid(alpha=0.3)
        hist.legend(fontsize=8)
    fig.tight_layout()
    return fig


def dtype_report(df: pd.DataFrame, tables: Sequence[dict[str, Any]], sources: Sequence[Any], space: Any,
                 folder: str | Path) -> tuple[Path, pd.DataFrame] | None:
    """Write dtypes.png and dtype_ratio.csv in `folder` when the run pairs float32 and int8 tables;
    returns (plot path, summary table), or None when it has no such pair."""
    pairs = dtype_pairs(tables)
    if not pairs:
        return None
    import matplotlib.pyplot as plt

    ratios = [space_ratios(sources, space, p) for p in pairs]
    summary = pd.DataFrame([ratio_summary(p, r) for p, r in zip(pairs, ratios)])
    folder = Path(folder)
    atomic_write(folder / "dtype_ratio.csv", summary.to_csv(index=False))
    fig = dtype_figure(df, pairs, ratios)
    try:
        with atomic_path(folder / "dtypes.png") as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return folder / "dtypes.png", summary


__all__ = ["accuracy_column", "dtype_figure", "dtype_pairs", "dtype_report", "ratio_summary", "space_ratios"]
