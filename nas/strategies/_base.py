"""The one interface every search strategy implements: ``ask() -> Arch``, ``tell(arch, result)``.

Strategies are plain objects holding their own `numpy.random.Generator` (or `torch.Generator`)
seeded from the config; `state_dict()` captures everything (RNG included) so that a restored
strategy continues exactly where the original would have. `tell` accepts archs the strategy did
not ask for (results replayed from storage on resume, or found by other workers): every strategy
learns from them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol, Sequence

import numpy as np

from nas._arch import Arch
from nas._space import SearchSpace
from nas._codec import Codec
from nas.strategies._multi import MultiObjective
from nas.strategies._objective import InfeasibleBudgetError, LatencyFn, Objective, ResultLike


class Strategy(ABC):
    """Base class: holds the space, its codec, the objective and the latency constraint."""

    name: ClassVar[str] = "strategy"

    def __init__(self, space: SearchSpace, *, seed: int, objective: Objective | MultiObjective | None = None,
                 latency_fn: LatencyFn | None = None, max_tries: int = 50) -> None:
        self.space = space
        self.codec = Codec.of(space)
        self.seed = int(seed)
        self.objective: Objective | MultiObjective = objective or Objective()
        self.latency_fn = latency_fn
        self.max_tries = int(max_tries)

    # ------------------------------------------------------------------ the interface
    @abstractmethod
    def ask(self) -> Arch:
        """The next arch to evaluate."""

    @abstractmethod
    def tell(self, arch: Arch, result: ResultLike) -> None:
        """The result of evaluating `arch` (asked by this strategy or not)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue identically (picklable; RNG states included)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    def ask_many(self, n: int) -> list[Arch]:
        return [self.ask() for _ in range(n)]

    def tell_many(self, archs: Sequence[Arch], results: Sequence[ResultLike]) -> None:
        for arch, result in zip(archs, results):
            self.tell(arch, result)

    # ------------------------------------------------------------------ the latency constraint
    @property
    def constrained(self) -> bool:
        return self.latency_fn is not None and self.objective.limit_ms is not None

    def feasible_mask(self, rows: np.ndarray) -> tuple[np.ndarray, list[Arch], np.ndarray]:
        """Decode `rows`; which meet the budget (all when unconstrained), the archs, latencies."""
        archs = self.codec.decode_many(rows)
        if not self.constrained:
            return np.ones(len(rows), dtype=bool), archs, np.full(len(rows), np.nan)
        lat = np.asarray(self.latency_fn(rows), dtype=float)  # type: ignore[misc]
        if lat.ndim == 2:  # one column per device (`MultiObjective`)
            return self.objective.feasible(lat), archs, lat  # type: ignore[union-attr]
        return lat <= float(self.objective.limit_ms), archs, lat  # type: ignore[arg-type]

    def draw_feasible(self, propose: Any, n: int, on_reject: Any = None) -> list[Arch]:
        """Up to `n` archs from ``propose(k) -> rows`` that meet the budget.

        Rejected candidates are re-proposed at most `max_tries` rounds (``on_reject(latency_ms)`` hears
        of each rejected batch); when none at all is found, raises `InfeasibleBudgetError` naming the
        budget, the table and the fastest arch seen.
        """
        kept: list[Arch] = []
        fastest: Any = np.inf
        sampled = 0
        for _ in range(max(1, self.max_tries)):
            rows = propose(n - len(kept))
            sampled += len(rows)
            mask, archs, lat = self.feasible_mask(rows)
            if lat.ndim == 2:  # per device
                fastest = np.fmin(fastest, np.nanmin(lat, axis=0)) if len(lat) else fastest
            elif len(lat) and np.isfinite(lat).any():
                fastest = min(fastest, float(np.nanmin(lat)))
            kept.extend(a for a, ok in zip(archs, mask) if ok)
            if on_reject is not None and not mask.all():
                on_reject(lat[~mask])
            if len(kept) >= n:
                return kept[:n]
            if not self.constrained:
                break
        if not kept and hasattr(self.objective, "infeasible_message"):
            raise InfeasibleBudgetError(self.objective.infeasible_message(  # type: ignore[union-attr]
                np.broadcast_to(fastest, (self.objective.n_latencies,)), sampled))  # type: ignore[union-attr]
        if not kept:
            raise InfeasibleBudgetError(
                f"no arch in this space meets {self.objective.limit_ms:g} ms on {self.objective.describe_table()} "
                f"(fastest of {self.max_tries * n} sampled: {fastest:.3g} ms); raise the budget or shrink the space")
        return kept

    # ------------------------------------------------------------------ helpers
    def _base_state(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "dims": list(self.codec.names)}

    def _check_state(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"state of strategy {state.get('name')!r} loaded into {self.name!r}")
        if state.get("dims") != list(self.codec.names):
            raise ValueError("state was saved for a different search space")


class DerivingStrategy(Protocol):
    """A strategy that runs its own search loop and derives archs at the end instead of ask/tell
    (ProxylessNAS). Built from the experiment's resolved `Objective`; the experiment evaluates and
    stores each derived arch as a trial, with the notes `derive` returns beside it."""

    name: str

    def derive(self, progress: bool = True) -> list[tuple[Arch, dict[str, Any]]]:
        """The derived archs, best first, each with what its trial records."""


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return rng.bit_generator.state


def set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = state
