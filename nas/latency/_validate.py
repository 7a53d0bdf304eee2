"""End-to-end checks of a table: measure whole networks, fit the calibration, report the error.

`measure_archs` exports and times whole networks with the table's own backend, threads and timing
protocol (same work-folder machinery as the table build, so it is resumable too). `calibrate` fits
the table's calibration on N random archs; `validate` measures N *other* random archs and the
space's presets and reports RMSE, MAPE, the share within ±5% / ±10% and Kendall's τ, before and
after calibration, as a CSV and a predicted-vs-measured scatter plot.
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from nas._arch import Arch
from nas._atomic import atomic_write, atomic_write_json
from nas._device import fingerprint, measure, Protocol
from nas.latency._backends import open_torch_entry
from nas.latency._table import Calibration, LatencyTable, TableError, today
from nas.latency._work import arch_entries, arch_id, dtype_id, write_work

if TYPE_CHECKING:  # pragma: no cover
    from nas._space import SearchSpace


def space_of(table: LatencyTable) -> "SearchSpace":
    """The search space a table was built for (from its metadata)."""
    from nas import list_spaces, load_space

    info = table.metadata.get("space")
    if not isinstance(info, dict) or "name" not in info:
        raise TableError(f"latency table {table.where} names no space in its metadata; pass the space")
    name = info["name"] if info.get("source") in (None, f"{info['name']}.yaml") and info["name"] in list_spaces() \
        else info["source"]
    return load_space(name, num_classes=info.get("num_classes"), in_channels=info.get("in_channels"),
                      resolutions=info.get("resolutions"), width_mult=info.get("width_mult"))


E2E_PASSES = 7
"""Independent passes per whole network. A network whose weights nearly fill the cache can run
tens of percent faster or slower from one process to the next (where its buffers land decides the
cache conflicts), so the end-to-end ground truth takes the median over more passes than a layer."""


def measure_archs(archs: Sequence[Arch], space: "SearchSpace", table: LatencyTable, work: str | Path,
                  progress: bool = True, keep_work: bool = False, spreads: list | None = None,
                  passes: int | None = E2E_PASSES, runs: int | None = None) -> np.ndarray:
    """Measured end-to-end latency (ms) of each arch, with the table's backend, threads and protocol
    (`passes` independent passes, `runs` least calls per repeat; None: the table's). The spread of
    each arch's passes, in percent, is appended to `spreads` when given."""
    meta = table.metadata
    backend, threads = meta["backend"], int(meta["threads"])
    protocol = Protocol.from_dict({**meta["protocol"], **({"passes": passes} if passes else {}),
                                   **({"runs": runs} if runs else {})})
    dtype = meta.get("dtype", "float32")  # int8 tables: the whole networks are quantized as the layers were
    entries = arch_entries(archs, space.num_classes, space.in_channels, backend, dtype, meta.get("quantization"))
    write_work(work, backend, entries, protocol, {"what": "whole networks"}, meta.get("backend_options", {}), progress)
    results = measure(work, threads, progress, open_torch_entry)
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    ids = [dtype_id(arch_id(a, space.num_classes, space.in_channels), dtype) for a in archs]
    if spreads is not None:
        spreads.extend(results[i]["spread_pct"] for i in ids)
    return np.array([results[i]["latency_ms"] for i in ids])


def random_archs(space: "SearchSpace", n: int, seed: int, exclude: Iterable[str] = ()) -> list[Arch]:
    """`n` distinct random archs of `space` (uniform choices), none of whose ids is in `exclude`."""
    rng = np.random.default_rng(seed)
    seen = set(exclude)
    out: list[Arch] = []
    for _ in range(100 * n):
        if len(out) == n:
            break
        arch = space.sample(rng)
        i = arch_id(arch, space.num_classes, space.in_channels)
        if i not in seen:
            seen.add(i)
            out.append(arch)
    return out


@dataclass(frozen=True)
class ErrorReport:
    """How far predictions are from measurements over a set of networks."""

    n: int
    rmse_ms: float
    mape_pct: float
    within_5pct: float
    within_10pct: float
    kendall_tau: float
    mean_bias_pct: float

    @classmethod
    def of(cls, predicted: Sequence[float], measured: Sequence[float]) -> "ErrorReport":
        p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
        rel = (p - m) / m
        tau = float("nan")
        if len(m) > 1:
            from scipy.stats import kendalltau

            tau = float(kendalltau(p, m).statistic)
        return cls(len(m), float(np.sqrt(np.mean((p - m) ** 2))), float(np.mean(np.abs(rel)) * 100),
                   float(np.mean(np.abs(rel) <= 0.05)), float(np.mean(np.abs(rel) <= 0.10)), tau,
                   float(np.mean(rel) * 100))

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def calibrate(table: LatencyTable, space: "SearchSpace", n: int = 40, seed: int = 1000,
              work: str | Path | None = None, progress: bool = True,
              passes: int | None = E2E_PASSES) -> tuple[Calibration, ErrorReport, ErrorReport]:
    """Measure `n` random archs end to end and fit `Calibration` (``a·sum + b·layers + d·max(0, Mweights − knee) + c``) (stored in
    the table's metadata; save the table to keep it). Returns the calibration and the fit error on
    those archs before and after."""
    table.check_covers(space)
    archs = random_archs(space, n, seed)
    work = Path(work) if work else default_work(table, "calibrate")
    measured = measure_archs(archs, space, table, work, progress, passes=passes)
    return fit_calibration(table, space, archs, measured, seed, passes,
                           fingerprint(table.metadata["backend"], int(table.metadata["threads"])))


def fit_calibration(table: LatencyTable, space: "SearchSpace", archs: Sequence[Arch], measured: Sequence[float],
                    seed: int, passes: int | None, machine: Mapping[str, Any] | None
                    ) -> tuple[Calibration, ErrorReport, ErrorReport]:
    """Fit and set the table's calibration from whole networks measured end to end (here, or on a
    device by the bundle's runner): `archs` are `random_archs(space, n, seed)`, so `refit` can
    draw them again. Returns the calibration and the fit error before and after."""
    measured = np.asarray(measured, dtype=float)
    compiled = table.compile(space)
    index = compiled.encode_indices(archs)
    summed, layers, _ = compiled.sum_and_layers(index)
    cal = Calibration.fit(summed, layers, compiled.weights_by_family(index), measured, seed=seed, date=today(), passes=passes,
                          arch_ids=[arch_id(a, space.num_classes, space.in_channels) for a in archs],
                          network_ms=[float(m) for m in measured], fingerprint=dict(machine or {}))
    mparams = compiled.sum_and_layers(index, cal.spill_families)[2]
    before, after = ErrorReport.of(summed, measured), ErrorReport.of(cal.apply(summed, layers, mparams), measured)
    cal.info.update(fit_mape_before_pct=round(before.mape_pct, 3), fit_mape_after_pct=round(after.mape_pct, 3))
    table.set_calibration(cal)
    return cal, before, after


def refit(table: LatencyTable, space: "SearchSpace") -> Calibration:
    """Fit the calibration again from the latencies it stored (no re-measuring): the archs are
    drawn again from its seed and checked against its arch ids."""
    cal = table.calibration
    if cal is None or "network_ms" not in cal.info:
        raise TableError(f"latency table {table.where} has no calibration with stored latencies; run "
                         "`nas latency calibrate`")
    info = dict(cal.info)
    archs = random_archs(space, len(info["network_ms"]), int(info["seed"]))
    ids = [arch_id(a, space.num_classes, space.in_channels) for a in archs]
    if ids != list(info["arch_ids"]):
        raise TableError(f"latency table {table.where}: the calibration's archs cannot be drawn again from seed "
                         f"{info['seed']} (another space or hwnas version); calibrate again")
    compiled = table.compile(space)
    index = compiled.encode_indices(archs)
    summed, layers, _ = compiled.sum_and_layers(index)
    for k in ("fitted_on", "fit_mape_before_pct", "fit_mape_after_pct"):
        info.pop(k, None)
    new = Calibration.fit(summed, layers, compiled.weights_by_family(index), info["network_ms"], **info)
    table.set_calibration(new)
    return new


def default_work(table: LatencyTable, what: str) -> Path:
    base = table.path if table.path else Path("latency")
    return base.with_name(base.name + f".{what}.work")


def validate(table: LatencyTable, space: "SearchSpace", n: int = 100, seed: int = 0, presets: bool = True,
             out_dir: str | Path | None = None, work: str | Path | None = None,
             progress: bool = True, passes: int | None = E2E_PASSES) -> dict[str, Any]:
    """Measure `n` held-out random archs (never those the calibration was fitted on) and the presets;
    report the error of the plain sum and of the calibrated prediction. Writes ``validate.csv``,
    ``validate.json`` and ``validate.png`` into `out_dir` when given."""
    table.check_covers(space)
    archs = heldout_archs(table, space, n, seed)
    groups = ["random"] * len(archs)
    if presets:
        for name in space.preset_names:
            for r in space.resolutions:
                archs.append(space.preset(name, resolution=r))
                groups.append(name)
    work = Path(work) if work else default_work(table, "validate")
    spreads: list[float] = []
    measured = measure_archs(archs, space, table, work, progress, spreads=spreads, passes=passes)
    report = score(table, space, archs, groups, measured, spreads, seed, passes)
    if out_dir is not None:
        write_validation(report, out_dir)
    return report


def heldout_archs(table: LatencyTable, space: "SearchSpace", n: int, seed: int) -> list[Arch]:
    """`n` random archs from `seed`, none of those the table's calibration was fitted on."""
    cal = table.calibration
    return random_archs(space, n, seed, cal.info.get("arch_ids", []) if cal else [])


def score(table: LatencyTable, space: "SearchSpace", archs: Sequence[Arch], groups: Sequence[str],
          measured: Sequence[float], spreads: Sequence[float], seed: int | None, passes: int | None) -> dict[str, Any]:
    """The validation report of networks measured end to end (here, or on a device): the error of
    the plain sum and of the calibrated prediction, per group ("random" vs the presets), and a row
    per network."""
    cal = table.calibration
    measured = np.asarray(measured, dtype=float)
    compiled = table.compile(space)
    index = compiled.encode_indices(archs)
    summed, layers, mparams = compiled.sum_and_layers(index)
    calibrated = cal.apply(summed, layers, compiled.sum_and_layers(index, cal.spill_families)[2]) if cal else summed
    g = np.array(groups)
    report: dict[str, Any] = {"table": table.where, "backend": table.metadata["backend"],
                              "dtype": table.metadata.get("dtype", "float32"),
                              "threads": table.metadata["threads"], "space": space.name,
                              "resolutions": list(space.resolutions), "seed": seed, "calibrated": cal is not None,
                              "e2e_passes": passes, "e2e_median_spread_pct": float(np.median(spreads))}
    for label, mask in (("random", g == "random"), ("presets", g != "random")):
        if mask.any():
            report[label] = {"sum": ErrorReport.of(summed[mask], measured[mask]).to_dict(),
                             "calibrated": ErrorReport.of(calibrated[mask], measured[mask]).to_dict()}
    rows = [{"group": grp, "arch_id": arch_id(a, space.num_classes, space.in_channels), "arch": a.short(),
             "layers": int(nl), "mweights": w, "summed_ms": s, "predicted_ms": p, "measured_ms": m,
             "measured_spread_pct": sp, "error_pct": (p - m) / m * 100}
            for grp, a, nl, w, s, p, m, sp in zip(groups, archs, layers, mparams, summed, calibrated, measured, spreads)]
    report["rows"] = rows
    return report


def write_validation(report: Mapping[str, Any], out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    rows = report["rows"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    atomic_write(out_dir / "validate.csv", buf.getvalue())
    atomic_write_json(out_dir / "validate.json", {k: v for k, v in report.items() if k != "rows"})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    m = np.array([r["measured_ms"] for r in rows])
    for grp, marker in (("random", "o"), ("presets", "s")):
        sel = [(r["group"] == "random") == (grp == "random") for r in rows]
        if any(sel):
            ax.scatter(m[sel], np.array([r["predicted_ms"] for r in rows])[sel], s=14, marker=marker, label=grp, zorder=3)
    lo, hi = m.min() * 0.9, m.max() * 1.1
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, zorder=2)
    ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.85", label="±10%", zorder=1)
    ax.set_xlabel("measured (ms)")
    ax.set_ylabel("predicted (ms)" + (", calibrated" if report.get("calibrated") else ", sum"))
    ax.set_title(f"{report['space']} r{report['resolutions']} {report['backend']} t{report['threads']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = out_dir / ".validate.png.tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out_dir / "validate.png")


def format_report(report: Mapping[str, Any]) -> str:
    """A small text table of a validation report."""
    lines = [f"{'set':8s} {'predictor':10s} {'n':>4s} {'RMSE ms':>9s} {'MAPE %':>7s} {'±5%':>6s} {'±10%':>6s} "
             f"{'tau':>6s} {'bias %':>7s}"]
    for group in ("random", "presets"):
        if group not in report:
            continue
        for which in ("sum", "calibrated"):
            e = report[group][which]
            lines.append(f"{group:8s} {which:10s} {e['n']:4d} {e['rmse_ms']:9.4f} {e['mape_pct']:7.2f} "
                         f"{e['within_5pct'] * 100:5.1f}% {e['within_10pct'] * 100:5.1f}% {e['kendall_tau']:6.3f} "
                         f"{e['mean_bias_pct']:+7.2f}")
    return "\n".join(lines)
