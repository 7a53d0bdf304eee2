"""Accuracy from a predictor (e.g. the supernet's OFA-style MLP on the arch encoding)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from nas._arch import Arch
from nas._space import SearchSpace
from nas.evaluators._common import EvaluatorBase
from nas.evaluators._latency import LatencySource

AccuracyFn = Callable[[Sequence[Arch]], np.ndarray]


class PredictorEvaluator(EvaluatorBase):
    """`predictor` is an object with ``predict_many(archs)`` / ``predict(archs)`` (used first), or a
    batch function, returning accuracies in [0, 1]; thousands of archs per second."""

    name = "predictor"

    def __init__(self, space: SearchSpace, predictor: Any, latency: Sequence[LatencySource] = ()) -> None:
        super().__init__(space, latency)
        # methods first: a torch module (e.g. nas.supernet.AccuracyPredictor) is callable on tensors, not archs
        if hasattr(predictor, "predict_many"):
            self._fn: AccuracyFn = predictor.predict_many
        elif hasattr(predictor, "predict"):
            self._fn = predictor.predict
        elif callable(predictor):
            self._fn = predictor
        else:
            raise TypeError(f"predictor {predictor!r} is not callable and has no predict_many/predict")
        self.predictor = predictor

    def accuracies(self, archs: Sequence[Arch]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        acc = np.asarray(self._fn(list(archs)), dtype=float).reshape(-1)
        if len(acc) != len(archs):
            raise ValueError(f"predictor returned {len(acc)} accuracies for {len(archs)} archs")
        return acc, [{} for _ in archs]
