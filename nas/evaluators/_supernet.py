"""Shared-weight accuracy from a trained once-for-all supernet (`nas.supernet`)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from nas._arch import Arch
from nas._config import ConfigError
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
    def from_checkpoint(cls, space: SearchSpace, latency: Sequence[LatencySource] = (), *, checkpoint: str,
                        data_root: str | None = None, val_limit: int | None = None) -> "SupernetEvaluator":
        """Load a `nas supernet train` checkpoint; its space must be the search space (same
        resolutions, width, classes, channels), else an error names the differing keys."""
        from nas.supernet import checkpoint_evaluator

        supernet, shared = checkpoint_evaluator(checkpoint, data_root=data_root, val_limit=val_limit)
        theirs, ours = supernet.space.to_dict(), space.to_dict()
        diff = sorted(k for k in set(theirs) | set(ours) if k != "description" and theirs.get(k) != ours.get(k))
        if diff:
            from nas._errors import HwnasError

            shown = ", ".join(f"{k}: search {ours.get(k)!r} vs supernet {theirs.get(k)!r}"
                              for k in diff if k not in ("stages", "presets", "defaults"))
            raise HwnasError(f"supernet checkpoint {checkpoint!r} was trained on another space than the search's "
                             f"(keys {diff} differ{'; ' + shown if shown else ''}); set the config's space to match")
        evaluator = cls(space, shared, latency)
        evaluator.checkpoint = checkpoint
        return evaluator


def load_accuracy_predictor(space: SearchSpace, **options: Any) -> Any:
    """The supernet's accuracy predictor (``path: FILE``), as `nas.supernet` provides it."""
    import nas.supernet as supernet

    loader = getattr(supernet, "load_accuracy_predictor", None)
    if loader is None:
        raise ConfigError("evaluator 'predictor' needs nas.supernet.load_accuracy_predictor, "
                          "which this build does not have yet")
    return loader(space=space, **options)
