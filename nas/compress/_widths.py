"""Latency of pruned archs from a table, timing the widths it lacks on the fly.

`WidthPredictor` predicts an arch the way `LatencyTable.predict` does (summed entries, calibrated),
from the table plus every width timed so far (`nas.latency.time_keys`, which adds them to the
table). `largest_widths` finds, for every prunable width at once, the largest width (a multiple of
`step`) that brings the whole network under a latency: it guesses each width's latency from the
layer's known widths (linear in the width between them), times the guesses in one batch, and
steps down where the measurement says the guess was too optimistic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from nas._arch import Arch, BlockKey
from nas.compress._prune import prunable, with_widths
from nas.latency import LatencyTable, time_keys

ROUNDS = 6
"""Timing rounds `largest_widths` takes before it gives a width up."""


def _family(key: BlockKey) -> tuple:
    """The key with its width left out (the layers whose latency is a function of the width)."""
    if key.kind == "head":
        return ("head", key.in_hw, key.in_channels, key.feature_channels, key.num_classes, key.act)
    return (key.op, key.in_hw, key.in_channels, key.out_channels, key.kernel, key.stride, key.se, key.skip, key.act)


def _width(key: BlockKey) -> int:
    return key.out_channels if key.kind == "head" else (key.mid or key.in_channels * key.expand)


class WidthPredictor:
    """Predicted latency (ms) of archs whose widths are off the table's grid."""

    def __init__(self, table: LatencyTable, num_classes: int, in_channels: int, work: str | Path,
                 progress: bool = False) -> None:
        self.table, self.num_classes, self.in_channels = table, num_classes, in_channels
        self.work, self.progress = Path(work), progress

    def keys(self, arch: Arch) -> list[BlockKey]:
        return arch.block_keys(self.num_classes, self.in_channels)

    def _calibrated(self, keys: list[BlockKey], summed_ms: float) -> float:
        cal = self.table.calibration
        return float(cal.apply(summed_ms, len(keys), cal.network_mparams(keys))) if cal else float(summed_ms)

    def time(self, archs: Iterable[Arch]) -> None:
        """Time every layer of `archs` the table lacks (one batch), the current layers as references."""
        archs = list(archs)
        keys = [k for a in archs for k in self.keys(a)]
        missing = [k for k in keys if k not in self.table]
        if missing:
            refs = [k for k in keys if k in self.table and k.kind == "block"]
            time_keys(self.table, missing, self.work, references=refs, progress=self.progress)

    def predict(self, arch: Arch) -> float:
        """Predicted latency (ms), timing any layer the table lacks first."""
        self.time([arch])
        keys = self.keys(arch)
        return self._calibrated(keys, sum(self.table.lookup_ms(k) for k in keys))

    def guess_ms(self, key: BlockKey) -> float:
        """The table's entry, or a guess from the same layer at the widths the table holds."""
        if key in self.table:
            return self.table.lookup_ms(key)
        family = _family(key)
        points = sorted((_width(k), self.table.lookup_ms(k)) for k in self.table.keys()
                        if k.kind == key.kind and _family(k) == family)
        if not points:
            return float("nan")
        w, first = np.unique(np.array([p[0] for p in points], dtype=float), return_index=True)
        ms = np.array([p[1] for p in points])[first]
        x = _width(key)
        if len(w) == 1:
            return float(ms[0] * x / w[0])
        if x < w[0]:  # below the narrowest: the line through the two narrowest, never below 0
            return float(max(0.0, ms[0] + (x - w[0]) * (ms[1] - ms[0]) / (w[1] - w[0])))
        return float(np.interp(x, w, ms))

    def guess_total_ms(self, arch: Arch) -> float:
        keys = self.keys(arch)
        return self._calibrated(keys, sum(self.guess_ms(k) for k in keys))

    def largest_widths(self, arch: Arch, limit_ms: float, step: int = 8,
                       names: Iterable[str] | None = None, max_cut: float = 1.0) -> dict[str, int]:
        """For each prunable width (or those in `names`), the largest multiple of `step` below its
        current width for which `arch` with only that width changed is predicted at or under
        `limit_ms` (timed, not guessed), keeping at least (1 − `max_cut`) of its channels; widths
        that cannot get there are left out."""
        current = prunable(arch)
        names = list(names) if names is not None else list(current)
        ceiling = {n: current[n] for n in names}  # the answer is below this
        chosen: dict[str, int] = {}
        for _ in range(ROUNDS):
            guesses = {}
            for name in names:
                if name in chosen or ceiling[name] <= step:
                    continue
                lowest = max(step, -(-int(current[name] * (1 - max_cut)) // step) * step)
                widths = range((ceiling[name] - 1) // step * step, lowest - 1, -step)
                fit = next((w for w in widths if self.guess_total_ms(with_widths(arch, {name: w})) <= limit_ms), None)
                if fit is not None:
                    guesses[name] = fit
            if not guesses:
                break
            self.time(with_widths(arch, {n: w}) for n, w in guesses.items())
            for name, w in guesses.items():
                if self.predict(with_widths(arch, {name: w})) <= limit_ms:
                    chosen[name] = w
                else:
                    ceiling[name] = w
        return chosen


def scale_to(predictor: WidthPredictor, arch: Arch, limit_ms: float, factors: Mapping[float, Arch]) -> float | None:
    """The largest of `factors` (factor -> arch) whose arch is predicted at or under `limit_ms`,
    guessing first and timing only the archs it checks (None if none is)."""
    order = sorted(factors, reverse=True)
    for f in order:
        if predictor.guess_total_ms(factors[f]) <= limit_ms * 1.02 and predictor.predict(factors[f]) <= limit_ms:
            return f
    return None


__all__ = ["WidthPredictor", "scale_to"]
