"""The timing protocol, shared by the host build and the torch-free device runner.

One pass times one model: `warmup` runs, then `repeats` groups of `runs` calls each; a group's
median is a *repeated median* and the pass's figure is the median of those medians. Mean, std and
p90 are over every timed call. Passes run in separate processes (see `nas._device._runner`); an
entry is the median over its passes, and an entry whose passes disagree by more than
`max_spread_pct` is re-measured in `remeasure_passes` more passes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from nas._errors import HwnasError


class ProtocolError(HwnasError):
    """A timing protocol setting is invalid."""


@dataclass(frozen=True)
class Protocol:
    """How one latency entry is measured (recorded in each table's metadata).

    runs: calls per repeat is max(`runs`, enough calls to fill `min_repeat_ms`), at most `max_runs`.
    """

    warmup: int = 10
    repeats: int = 5
    runs: int = 10
    min_repeat_ms: float = 10.0
    max_runs: int = 200
    passes: int = 3
    max_spread_pct: float = 5.0
    remeasure_passes: int = 2

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value < (0 if f.name in ("warmup", "remeasure_passes", "min_repeat_ms") else 1):
                raise ProtocolError(f"timing protocol: {f.name}={value!r} is out of range")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Protocol":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ProtocolError(f"timing protocol: unknown field(s) {unknown}")
        return cls(**dict(data))


@dataclass(frozen=True)
class PassStats:
    """One pass over one model: median of repeated medians, and moments over every call."""

    median_ms: float
    mean_ms: float
    std_ms: float
    p90_ms: float
    count: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def time_pass(run: Callable[[], Any], protocol: Protocol, clock: Callable[[], int] = time.perf_counter_ns) -> PassStats:
    """Time `run()` (one inference) under `protocol`, in this process."""
    for _ in range(protocol.warmup):
        run()
    t0 = clock()
    run()
    estimate_ms = max((clock() - t0) / 1e6, 1e-4)
    runs = int(min(protocol.max_runs, max(protocol.runs, np.ceil(protocol.min_repeat_ms / estimate_ms))))
    samples = np.empty((protocol.repeats, runs))
    for r in range(protocol.repeats):
        for i in range(runs):
            t0 = clock()
            run()
            samples[r, i] = clock() - t0
    samples /= 1e6
    medians = np.median(samples, axis=1)
    return PassStats(float(np.median(medians)), float(samples.mean()), float(samples.std()),
                     float(np.percentile(samples, 90)), int(samples.size))


def spread_pct(pass_medians: Sequence[float]) -> float:
    """How far the passes of one entry disagree: (max - min) / median, in percent."""
    values = np.asarray(pass_medians, dtype=float)
    return float((values.max() - values.min()) / np.median(values) * 100.0)


def combine_passes(passes: Sequence[PassStats]) -> dict[str, float]:
    """One entry from its passes: latency = median of the pass medians; moments from the median pass."""
    if not passes:
        raise ProtocolError("an entry needs at least one pass")
    medians = [p.median_ms for p in passes]
    middle = sorted(passes, key=lambda p: p.median_ms)[(len(passes) - 1) // 2]
    return {"latency_ms": float(np.median(medians)), "mean_ms": middle.mean_ms, "std_ms": middle.std_ms,
            "p90_ms": middle.p90_ms, "count": sum(p.count for p in passes), "passes": len(passes),
            "spread_pct": spread_pct(medians)}


def core_spread_pct(pass_medians: Sequence[float], core: int) -> float:
    """Spread of the `core` passes nearest the median of all passes (all of them when fewer)."""
    values = np.asarray(pass_medians, dtype=float)
    nearest = values[np.argsort(np.abs(values - np.median(values)), kind="stable")[:core]]
    return spread_pct(nearest)
