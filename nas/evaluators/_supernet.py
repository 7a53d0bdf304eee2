"""Shared-weight accuracy from a trained once-for-all supernet (`nas.supernet`)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from nas._arch import Arch
from nas._config import ConfigError
from nas._space import SearchSpace
from nas.evaluators._common import EvaluatorBase
from nas.evaluators._latency import LatencySource, TableLatency


class SupernetEvaluator(EvaluatorBase):
    """Accuracy of each arch with the supernet's shared weights (BN recalibrated per arch).

    `shared` is a callable arch -> accuracy, e.g. `nas.supernet.SharedWeightEvaluator`. `also`
    names further accuracies recorded beside it in each result's extra fields (a search scored in
    simulated int8 over float32 and int8 tables also records ``accuracy_float32``).
    """

    name = "supernet"

    def __init__(self, space: SearchSpace, shared: Callable[[Arch], float],
                 latency: Sequence[LatencySource] = (), also: Mapping[str, Callable[[Arch], float]] | None = None
                 ) -> None:
        super().__init__(space, latency)
        self.shared = shared
        self.also = dict(also or {})

    def accuracies(self, archs: Sequence[Arch]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Accuracy per arch; extras: the `also` accuracies and ``val_images`` (how many images each
        accuracy was measured on, when `shared` says: its binomial noise)."""
        images = getattr(self.shared, "images", None)
        extras = [{**{name: float(fn(a)) for name, fn in self.also.items()},
                   **({"val_images": int(images)} if images else {})} for a in archs]
        return np.array([float(self.shared(a)) for a in archs]), extras

    @classmethod
    def from_checkpoint(cls, space: SearchSpace, latency: Sequence[LatencySource] = (), *, checkpoint: str,
                        data_root: str | None = None, val_limit: int | None = None,
                        int8: bool = False) -> "SupernetEvaluator":
        """Load a `nas supernet train` checkpoint; its space must be the search space (same
        resolutions, width, classes, channels), else an error names the differing keys.

        checkpoint: a `nas supernet train` checkpoint (or its slim, weights-only export).
        data_root: read the checkpoint config's dataset from this directory.
        val_limit: validation images each arch is scored on (null: the whole validation split).
        int8: score archs under simulated int8 (`nas.supernet.fake_quantized`) instead of float32.
          Off by default: on the quickstart supernet, float32 shared-weight accuracy ranks the int8
          models' top-1 at least as well (`experiments/benchmarks/int8_rank.py`). With float32 and
          int8 tables, the float32 accuracy is also recorded (``accuracy_float32``) for the float32 front.
        """
        from nas.supernet import SharedWeightEvaluator, checkpoint_evaluator

        supernet, shared = checkpoint_evaluator(checkpoint, data_root=data_root, val_limit=val_limit)
        theirs, ours = supernet.space.to_dict(), space.to_dict()
        diff = sorted(k for k in set(theirs) | set(ours) if k != "description" and theirs.get(k) != ours.get(k))
        if diff:
            from nas._errors import HwnasError

            shown = ", ".join(f"{k}: search {ours.get(k)!r} vs supernet {theirs.get(k)!r}"
                              for k in diff if k not in ("stages", "presets", "defaults"))
            raise HwnasError(f"supernet checkpoint {checkpoint!r} was trained on another space than the search's "
                             f"(keys {diff} differ{'; ' + shown if shown else ''}); set the config's space to match")
        scored = SharedWeightEvaluator(supernet, shared.calibration, shared.validation, int8=True) if int8 else shared
        also = {"accuracy_float32": shared} if int8 and {"float32", "int8"} <= table_dtypes(latency) else {}
        evaluator = cls(space, scored, latency, also)
        evaluator.checkpoint = checkpoint
        evaluator.int8 = bool(int8)
        return evaluator


def table_dtypes(latency: Sequence[LatencySource]) -> set[str]:
    """The dtypes of the measured tables among `latency` (`LatencyTable.dtype`)."""
    return {s.table.dtype for s in latency if isinstance(s, TableLatency)}


def load_accuracy_predictor(space: SearchSpace, **options: Any) -> Any:
    """The supernet's accuracy predictor (``path: FILE``), as `nas.supernet` provides it."""
    import nas.supernet as supernet

    loader = getattr(supernet, "load_accuracy_predictor", None)
    if loader is None:
        raise ConfigError("evaluator 'predictor' needs nas.supernet.load_accuracy_predictor, "
                          "which this build does not have yet")
    return loader(space=space, **options)
