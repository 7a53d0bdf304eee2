"""Adapt a table built on another machine to this one from a few whole networks (HELP-style).

A full rebuild times every layer again (minutes to most of an hour). When the cost structure
moved but kept its shape, a few networks measured end to end here are enough: `adapt` measures
`n` networks (the canaries, then random archs), and fits one factor per layer family (stem, head,
and each block op × kernel × squeeze-excite) over the old entries, plus a per-layer and a constant
term:

    measured ≈ Σ_f a_f · (old entries of family f) + b · layers + c

by least squares on relative error, each a_f pulled toward the common factor with a ridge whose
strength is chosen by leave-one-out error on the same `n` networks (nothing else is looked at).
The adapted table holds the scaled entries and (b, c) as its calibration, this machine's
fingerprint and canaries, and says it was adapted. Anchor: Lee et al., HELP (NeurIPS 2021).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas._arch import BlockKey
from nas.latency._check import canary_archs, canary_record, here_fingerprint, table_fingerprint
from nas.latency._table import Calibration, LatencyTable, TableError, today
from nas.latency._validate import ErrorReport, default_work, measure_archs, random_archs
from nas.latency._work import arch_id

if TYPE_CHECKING:  # pragma: no cover
    from nas._space import SearchSpace

RIDGES = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
"""Ridge strengths tried (chosen by leave-one-out on the adapt networks)."""
ADAPT_PASSES = 5
ADAPT_SEED = 2000


def adapt_family(key: BlockKey) -> str:
    """The family a layer's factor is fitted for: "stem", "head" or ``<op>_k<kernel>[_se]``."""
    if key.kind != "block":
        return key.kind
    return f"{key.op}_k{key.kernel}" + ("_se" if key.se else "")


def _design(table: LatencyTable, space: "SearchSpace", archs: list, families: list[str]) -> np.ndarray:
    """Per arch: old summed entries of each family, then the layer count, then 1."""
    col = {f: i for i, f in enumerate(families)}
    x = np.zeros((len(archs), len(families) + 2))
    for r, arch in enumerate(archs):
        keys = space.block_keys(arch)
        for k in keys:
            x[r, col[adapt_family(k)]] += table.lookup_ms(k)
        x[r, -2], x[r, -1] = len(keys), 1.0
    return x


def _fit(x: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """Relative least squares with the family factors pulled toward their common factor."""
    nf = x.shape[1] - 2
    g = float(np.sum(x[:, :nf].sum(1) / y) / np.sum((x[:, :nf].sum(1) / y) ** 2))  # one factor for all
    a = x / y[:, None]
    b = np.ones(len(y))
    scale = np.sqrt(ridge * len(y))
    penalty = np.zeros((nf, x.shape[1]))
    penalty[:, :nf] = np.eye(nf) * scale
    coef, *_ = np.linalg.lstsq(np.vstack([a, penalty]), np.concatenate([b, np.full(nf, g * scale)]), rcond=None)
    return coef


def _loo_mape(x: np.ndarray, y: np.ndarray, ridge: float) -> float:
    errors = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        coef = _fit(x[keep], y[keep], ridge)
        errors.append(abs(x[i] @ coef / y[i] - 1))
    return float(np.mean(errors) * 100)


def adapt(table: LatencyTable, space: "SearchSpace", out: str | Path, n: int = 30, seed: int = ADAPT_SEED,
          passes: int = ADAPT_PASSES, work: str | Path | None = None, progress: bool = True
          ) -> tuple[LatencyTable, dict[str, Any]]:
    """Measure `n` networks here and write the adapted table at `out`; returns it and a report
    (factors, ridge, fit and leave-one-out error, seconds)."""
    started = time.perf_counter()
    table.check_covers(space)
    canaries = canary_archs(space)
    if n < len(canaries) + 8:
        raise TableError(f"adapt needs n >= {len(canaries) + 8} networks ({len(canaries)} canaries + 8), got {n}")
    exclude = [arch_id(a, space.num_classes, space.in_channels) for _, a in canaries]
    archs = [a for _, a in canaries] + random_archs(space, n - len(canaries), seed, exclude)
    spreads: list[float] = []
    work = Path(work) if work else default_work(table, "adapt")
    y = measure_archs(archs, space, table, work, progress, spreads=spreads, passes=passes)
    families = sorted({adapt_family(k) for k in table.keys()})
    x = _design(table, space, archs, families)
    loo = {r: _loo_mape(x, y, r) for r in RIDGES}
    ridge = min(loo, key=loo.get)
    coef = _fit(x, y, ridge)
    factors = {f: float(c) for f, c in zip(families, coef[:len(families)])}
    per_layer_ms, offset_ms = float(coef[-2]), float(coef[-1])
    fit = ErrorReport.of(x @ coef, y)
    entries = {}
    for k in table.keys():
        e = table.entry(k)
        a = factors[adapt_family(k)]
        if a <= 0:
            raise TableError(f"adapt: the fitted factor of {adapt_family(k)} is {a:.3g} <= 0 ({n} networks do not "
                             "pin it down); measure more (--n) or rebuild the table")
        entries[k] = {**e, **{c: e[c] * a for c in ("latency_ms", "mean_ms", "std_ms", "p90_ms")}}
    meta = dict(table.metadata)
    meta.pop("calibration", None)
    adapted = LatencyTable(entries, meta)
    adapted.set_calibration(Calibration(1.0, per_layer_ms, offset_ms, fitted_on=n, seed=seed, date=today(),
                                        passes=passes, model_note="adapted: per-family factors in the entries",
                                        arch_ids=[arch_id(a, space.num_classes, space.in_channels) for a in archs],
                                        network_ms=[float(v) for v in y]))
    adapted.metadata["fingerprint"] = here_fingerprint(table)
    k = len(canaries)  # the first networks measured are the canaries
    adapted.metadata["canaries"] = canary_record(space, canaries, y[:k], spreads[:k], passes)
    seconds = time.perf_counter() - started
    report = {"from": table.where, "date": today(), "n": n, "seed": seed, "passes": passes, "ridge": ridge,
              "loo_mape_pct": round(loo[ridge], 3), "fit_mape_pct": round(fit.mape_pct, 3),
              "factors": {f: round(v, 4) for f, v in factors.items()}, "per_layer_ms": per_layer_ms,
              "offset_ms": offset_ms, "seconds": round(seconds, 1), "from_fingerprint": table_fingerprint(table),
              "noise_pct": round(float(np.median(spreads)), 3)}
    adapted.metadata["adapted"] = report
    adapted.save(out)
    return adapted, report

