"""A synthetic objective with a known optimum, for testing and benchmarking strategies.

Not a model of accuracy: a smooth function of the arch's choices. Each choice's option index is
scaled to [0, 1]; a seeded target point t (canonicalized through decode/encode so that it is an
arch of the space) is the unique maximum::

    accuracy(arch) = low + (high - low) * exp(-sharpness * Σ_d w_d (x_d - t_d)² / Σ_d w_d)

with seeded weights w_d in [0.5, 1.5]. ``optimum()`` returns the best arch (accuracy = high).
Latency comes from real sources (tables or the MACs proxy) like every evaluator.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from nas._arch import Arch
from nas._space import SearchSpace
from nas.evaluators._common import EvaluatorBase
from nas.evaluators._latency import LatencySource


class SyntheticEvaluator(EvaluatorBase):
    name = "synthetic"

    def __init__(self, space: SearchSpace, latency: Sequence[LatencySource] = (), *, seed: int = 0,
                 low: float = 0.5, high: float = 0.95, sharpness: float = 4.0) -> None:
        """The options (``evaluator.options``):

        seed: picks the optimum and the weights (its own stream: never a strategy's draws).
        low: the accuracy far from the optimum.
        high: the accuracy of the optimum (`optimum()`).
        sharpness: how fast accuracy falls off with the weighted distance to the optimum.
        """
        super().__init__(space, latency)
        rng = np.random.default_rng([seed, 0x5F17E71C])  # its own stream: never a strategy's draws
        raw = np.floor(rng.random(self.codec.ndims) * self.codec.sizes).astype(np.int64)
        self.target_row = self.codec.encode(self.codec.decode(raw))
        self.weights = rng.uniform(0.5, 1.5, self.codec.ndims) * (self.codec.sizes > 1)
        self.low, self.high, self.sharpness = float(low), float(high), float(sharpness)
        self._target = self.codec.ordinal(self.target_row[None])[0]

    def optimum(self) -> Arch:
        """The arch with the highest synthetic accuracy (`high`)."""
        return self.codec.decode(self.target_row)

    def score_rows(self, rows: np.ndarray) -> np.ndarray:
        """Vectorized accuracy of encoded rows (see `Codec`)."""
        d = (self.codec.ordinal(rows) - self._target) ** 2
        dist = (d * self.weights).sum(-1) / max(self.weights.sum(), 1e-12)
        return self.low + (self.high - self.low) * np.exp(-self.sharpness * dist)

    def accuracies(self, archs: Sequence[Arch]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        return self.score_rows(self.codec.encode_many(archs)), [{} for _ in archs]
