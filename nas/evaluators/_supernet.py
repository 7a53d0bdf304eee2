"""Shared-weight accuracy from a trained once-for-all supernet (`nas.supernet`)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from nas._arch import Arch
from nas._space import SearchSpace
from nas.evaluators._common import EvaluatorBase
from nas.evaluators._latency import LatencySource


class SupernetEvaluator(EvaluatorBase):
    """Accuracy of each arch with the supernet's shared weights (BN recalibrated per arch).

    `shared` is a callable arch -> accuracy, e.g. `nas.supernet.SharedWeightEvaluator`.
    """

    name = "supernet"

    def __init__(self, space: SearchSpace, shared: Callable[[Arch], float],
                 latency: Sequence[LatencySource] = ()) -> None:
        super().__init__(space, latency)
        self.shared = shared

    def accuracies(self, archs: Sequence[Arch]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        return np.array([float(self.shared(a)) for a in archs]), [{} for _ in archs]

    @classmethod
    def from_checkpoint(cls, space: SearchSpace, latency: Sequence[LatencySource] = (), **options: Any
                        ) -> "SupernetEvaluator":
        """Load a supernet checkpoint (``checkpoint: PATH``) through `nas.supernet.checkpoint_evaluator`."""
        from nas.supernet import checkpoint_evaluator

        return cls(space, checkpoint_evaluator(**options), latency)


def load_accuracy_predictor(space: SearchSpace, **options: Any) -> Any:
    """The supernet's accuracy predictor (``path: FILE``), as `nas.supernet` provides it."""
    import nas.supernet as supernet

    loader = getattr(supernet, "load_accuracy_predictor", None)
    if loader is None:
        from nas.experiment._config import ConfigError

        raise ConfigError("evaluator 'predictor' needs nas.supernet.load_accuracy_predictor, "
                          "which this build does not have yet")
    return loader(space=space, **options)
