"""What a strategy maximizes: accuracy, or MnasNet's latency-aware reward, and the latency budget.

MnasNet (Tan et al., 2019) reward: ``ACC × (LAT / T) ** w`` with ``w = alpha`` if ``LAT <= T``
else ``beta``. The paper's soft setting is ``alpha = beta = -0.07``; the hard constraint
``alpha = 0, beta = -1`` leaves accuracy untouched inside the budget and divides it by the
overshoot outside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from nas._errors import HwnasError

LatencyFn = Callable[[np.ndarray], np.ndarray]
"""Predicted latency in ms of each row of a batch of option-index rows (`nas.Codec`; a latency
source's ``predict_rows``)."""

REWARD_PRESETS: dict[str, tuple[float, float]] = {"soft": (-0.07, -0.07), "hard": (0.0, -1.0)}


class SearchError(HwnasError):
    """A search cannot proceed (e.g. no arch meets the latency budget)."""


class InfeasibleBudgetError(SearchError):
    """No arch of the space meets the latency budget."""


class ResultLike(Protocol):
    accuracy: float
    latency_ms: Any  # Mapping[str, float]


@dataclass(frozen=True)
class Objective:
    """How a strategy scores a result.

    table: the latency table (name in ``Result.latency_ms``) the budget and reward use; None takes
    the result's first table. target_ms: the reward's latency target T (None: the reward is
    accuracy alone). budget_ms: a hard budget; strategies reject archs over it before evaluation
    (defaults to target_ms; give ``budget_ms=float("inf")`` for a soft target without rejection).
    reward: "accuracy", "soft", "hard" or "custom" (then alpha/beta are used as given).
    """

    table: str | None = None
    target_ms: float | None = None
    budget_ms: float | None = None
    reward: str = "soft"
    alpha: float | None = None
    beta: float | None = None

    def __post_init__(self) -> None:
        check_reward(self.reward, self.alpha, self.beta)
        if self.target_ms is not None and not self.target_ms > 0:
            raise SearchError(f"target_ms must be positive, got {self.target_ms}")
        if self.budget_ms is not None and not self.budget_ms > 0:
            raise SearchError(f"budget_ms must be positive, got {self.budget_ms}")

    @property
    def limit_ms(self) -> float | None:
        """The hard budget candidates must meet (None or inf: no rejection)."""
        limit = self.budget_ms if self.budget_ms is not None else self.target_ms
        return None if limit is None or limit == float("inf") else float(limit)

    @property
    def exponents(self) -> tuple[float, float]:
        return reward_exponents(self.reward, self.alpha, self.beta)

    def latency(self, result: ResultLike) -> float:
        lat = result.latency_ms
        if not lat:
            return float("nan")
        if self.table is None:
            return float(next(iter(lat.values())))
        if self.table not in lat:
            raise SearchError(f"result has no latency for table {self.table!r}; it has {sorted(lat)}")
        return float(lat[self.table])

    def reward_of(self, accuracy: float, latency_ms: float) -> float:
        """MnasNet reward of one (accuracy, latency) pair (accuracy when no target is set)."""
        if self.target_ms is None or self.reward == "accuracy":
            return float(accuracy)
        ratio = latency_ms / self.target_ms
        return float(accuracy * ratio ** reward_exponent(ratio, *self.exponents))

    def score(self, result: ResultLike) -> float:
        acc = float(result.accuracy)
        if self.target_ms is None or self.reward == "accuracy":
            return acc
        return self.reward_of(acc, self.latency(result))

    def describe_table(self) -> str:
        return self.table or "the latency table"


def check_reward(reward: str, alpha: float | None, beta: float | None) -> None:
    """`SearchError` unless `reward` is accuracy, a preset (soft, hard) or custom with both exponents."""
    if reward not in (*REWARD_PRESETS, "accuracy", "custom"):
        raise SearchError(f"reward {reward!r} is not one of accuracy, soft, hard, custom")
    if reward == "custom" and (alpha is None or beta is None):
        raise SearchError("reward 'custom' needs alpha and beta")


def reward_exponents(reward: str, alpha: float | None, beta: float | None) -> tuple[float, float]:
    """(w inside the budget, w outside) of a reward: a preset's, custom's (alpha, beta), accuracy's (0, 0)."""
    if reward in REWARD_PRESETS:
        return REWARD_PRESETS[reward]
    if reward == "custom":
        return float(alpha), float(beta)  # type: ignore[arg-type]
    return 0.0, 0.0


def reward_exponent(ratio: Any, below: float, above: float) -> Any:
    """MnasNet's exponent w of ``(LAT/T)^w`` for ``ratio = LAT/T``: `below` where ``LAT <= T``, else
    `above`. A scalar (float or 0-d tensor) gives a float, an array an array (ProxylessNAS's latency
    loss uses the same rule with its beta_below / beta)."""
    if isinstance(ratio, np.ndarray):
        return np.where(ratio <= 1.0, below, above)
    return below if ratio <= 1.0 else above


def mnas_reward(accuracy: np.ndarray | float, latency_ms: np.ndarray | float, target_ms: float,
                alpha: float = -0.07, beta: float = -0.07) -> np.ndarray:
    """Vectorized MnasNet reward ``ACC × (LAT/T)^w`` (w = alpha inside the budget, beta outside)."""
    acc = np.asarray(accuracy, dtype=float)
    ratio = np.asarray(latency_ms, dtype=float) / target_ms
    return acc * ratio ** reward_exponent(ratio, alpha, beta)
