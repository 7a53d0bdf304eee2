"""After a NetAdapt run: the uniform-width baseline, end-to-end latency of every point, a CSV and a plot.

The baseline scales every prunable width of the start by one factor (`uniform`), the largest factor
predicted at or under each NetAdapt iteration's latency; its channels are kept by the same
criterion and it is fine-tuned as many steps as NetAdapt's path had taken by then
(iteration × short_steps, same learning rate). Both curves are then measured end to end with the
table's backend and protocol in one batch, so they share the machine's state.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from nas._arch import Arch
from nas._atomic import atomic_write
from nas._model import Network
from nas.compress._netadapt import Env, NetAdaptConfig, _save_state, short_finetune, trajectory
from nas.compress._prune import copy_weights, uniform
from nas.compress._widths import WidthPredictor, scale_to
from nas.latency import measure_archs

FACTORS = tuple(round(f, 2) for f in np.arange(1.0, 0.195, -0.02))
"""Uniform width factors the baseline may take."""


def uniform_baseline(start: Network, state: dict[str, Any], config: NetAdaptConfig, env: Env) -> list[dict[str, Any]]:
    """One uniform-width point per NetAdapt iteration (resumable: points already in the state stay)."""
    predictor = WidthPredictor(env.table, start.num_classes, start.in_channels, env.run_dir / "work")
    archs = {f: uniform(start.arch, f) for f in FACTORS}
    points = state.setdefault("baseline", [])
    done = {p["iteration"] for p in points}
    from tqdm import tqdm

    for it in tqdm(state["iterations"], desc="uniform baseline", unit="point", disable=not env.progress):
        if it["iteration"] in done:
            continue
        factor = scale_to(predictor, start.arch, it["predicted_ms"], archs)
        if factor is None:
            env.log(f"compress: no uniform width factor >= {FACTORS[-1]} reaches {it['predicted_ms']:.4f} ms")
            continue
        steps = it["iteration"] * config.short_steps
        net = copy_weights(start, archs[factor])
        top1 = short_finetune(net, env, config, steps, config.seed * 100_003 + 50_000 + it["iteration"])
        points.append({"iteration": it["iteration"], "factor": factor, "arch": archs[factor].to_dict(),
                       "predicted_ms": predictor.predict(archs[factor]), "val_top1": top1, "steps": steps})
        _save_state(env, state)
    return points


def measure_points(state: dict[str, Any], config: NetAdaptConfig, env: Env) -> list[dict[str, Any]]:
    """Rows (method, iteration, arch, predicted, measured, top-1) of the trajectory and the baseline,
    measured end to end in one batch; kept in the state so a rerun does not measure again."""
    if state.get("points") and len(state["points"]) == len(state["iterations"]) + 1 + len(state.get("baseline", [])):
        return state["points"]
    rows = [{"method": "netadapt", "iteration": i, "arch": a.to_dict(), "short": a.short(), "val_top1": t,
             "predicted_ms": state["start"]["predicted_ms"] if i == 0 else state["iterations"][i - 1]["predicted_ms"],
             "steps": i * config.short_steps} for i, a, t in trajectory(state)]
    rows += [{"method": "uniform", "iteration": p["iteration"], "arch": p["arch"],
              "short": Arch.from_dict(p["arch"]).short(), "val_top1": p["val_top1"], "factor": p["factor"],
              "predicted_ms": p["predicted_ms"], "steps": p["steps"]} for p in state.get("baseline", [])]
    archs = [Arch.from_dict(r["arch"]) for r in rows]
    measured = measure_archs(archs, env.space, env.table, env.run_dir / "work", env.progress,
                             passes=config.passes)
    for r, m in zip(rows, measured):
        r["measured_ms"] = float(m)
    state["points"] = rows
    _save_state(env, state)
    return rows


COLUMNS = ("method", "iteration", "factor", "steps", "predicted_ms", "measured_ms", "val_top1", "short")


def write_trajectory(rows: list[dict[str, Any]], state: dict[str, Any], run_dir: Path) -> tuple[Path, Path]:
    """``trajectory.csv`` and ``trajectory.png`` (val top-1 against measured latency, both methods)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    csv_path = run_dir / "trajectory.csv"
    atomic_write(csv_path, out.getvalue())
    return csv_path, _plot(rows, state, run_dir / "trajectory.png")


def _plot(rows: list[dict[str, Any]], state: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas._atomic import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, style, label in (("netadapt", "o-", "NetAdapt (one width per iteration)"),
                                 ("uniform", "s--", "uniform width scaling")):
        pts = sorted((r["measured_ms"], r["val_top1"], r["iteration"]) for r in rows
                     if r["method"] == method and r["val_top1"] is not None)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
            for x, y, i in pts:
                ax.annotate(str(i), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.axvline(state["target_ms"], color="gray", ls=":", label=f"target {state['target_ms']:.4f} ms")
    ax.axvline(state["start"]["measured_ms"], color="gray", ls="-.", lw=0.8,
               label=f"start {state['start']['measured_ms']:.4f} ms")
    ax.set_xlabel("measured latency (ms, end to end)")
    ax.set_ylabel("validation top-1 (after as many fine-tuning steps)")
    ax.set_title("NetAdapt vs uniform width scaling (labels: iteration)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


__all__ = ["measure_points", "uniform_baseline", "write_trajectory"]
