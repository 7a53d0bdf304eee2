"""Shared by the evaluators: latency from every source, params and MACs, for a batch of archs."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from nas._arch import Arch, key_macs, key_params
from nas._codec import Codec
from nas._space import SearchSpace
from nas.evaluators._latency import LatencySource
from nas.evaluators._result import Result


class EvaluatorBase:
    """Evaluators derive from this: they implement `accuracies(archs)`; latency and size come here."""

    name = "evaluator"

    def __init__(self, space: SearchSpace, latency: Sequence[LatencySource] = ()) -> None:
        self.space = space
        self.codec = Codec.of(space)  # validates archs (cached per arch)
        self.latency_sources = list(latency)
        self._sizes: dict[Arch, tuple[int, int]] = {}
        names = [s.name for s in self.latency_sources]
        if len(set(names)) != len(names):
            raise ValueError(f"latency sources need distinct names, got {names}")

    @property
    def latency_names(self) -> list[str]:
        return [s.name for s in self.latency_sources]

    def accuracies(self, archs: Sequence[Arch]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Accuracy of each arch and per-arch extra fields."""
        raise NotImplementedError

    def evaluate(self, arch: Arch) -> Result:
        return self.evaluate_many([arch])[0]

    def evaluate_many(self, archs: Sequence[Arch]) -> list[Result]:
        archs = list(archs)
        rows = self.codec.encode_many(archs)  # ArchError naming the choice when outside the space
        acc, extras = self.accuracies(archs)
        lat = {s.name: np.asarray(s.predict_rows(rows), dtype=float) for s in self.latency_sources}
        return [Result(float(acc[i]), {n: float(v[i]) for n, v in lat.items()}, *self._size(a), extras[i])
                for i, a in enumerate(archs)]

    def _size(self, arch: Arch) -> tuple[int, int]:
        """(params, MACs), cached per arch."""
        size = self._sizes.get(arch)
        if size is None:
            keys = self.space.block_keys(arch)
            size = (sum(key_params(k) for k in keys), sum(key_macs(k) for k in keys))
            if len(self._sizes) < 500_000:
                self._sizes[arch] = size
        return size


def latency_fn(sources: Sequence[LatencySource], name: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The batch predictor (option-index rows -> ms) of source `name` (default: the first), for a
    strategy's budget check."""
    if not sources:
        raise ValueError("no latency source")
    if name is None:
        return sources[0].predict_rows
    for s in sources:
        if s.name == name:
            return s.predict_rows
    raise ValueError(f"no latency source named {name!r}; sources: {[s.name for s in sources]}")
