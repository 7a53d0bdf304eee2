"""Several devices at once: a latency budget and reward target per table (`MultiObjective`).

Two goals:

- ``joint``: one arch must meet every device's budget. A candidate is feasible when its latency is
  within the budget on every table; the reward is MnasNet's with one factor per device,
  ``ACC × Π_i (LAT_i / T_i) ^ w_i`` (each w_i from `reward_exponent`); NSGA-II minimizes each latency.
- ``per_device``: a best arch per device from one shared history (each arch's accuracy is evaluated
  once and scored for every device). A candidate is feasible when it meets at least one budget; its
  score is its best device score (``ACC × (LAT_i / T_i) ^ w_i`` over the devices whose budget it
  meets), and evolution keeps an elite per device (`device_scores`). Results pick, per device, the
  most accurate arch within that device's budget among all trials.

A strategy's ``latency_fn`` returns an (n, devices) matrix for a `MultiObjective` (one column per
`DeviceBudget`, in order); `feasible` turns it into a mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from nas.strategies._objective import (ResultLike, SearchError, check_reward, reward_exponent,
                                      reward_exponents)

GOALS = ("joint", "per_device")


@dataclass(frozen=True)
class DeviceBudget:
    """One device's latency table (its name in ``Result.latency_ms``), hard budget and reward target
    (ms; None: no budget / the target defaults to the budget)."""

    table: str
    budget_ms: float | None = None
    target_ms: float | None = None

    def __post_init__(self) -> None:
        for key in ("budget_ms", "target_ms"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise SearchError(f"{self.table}: {key} must be positive, got {value}")

    @property
    def limit_ms(self) -> float:
        """The hard budget (inf when none)."""
        return float("inf") if self.budget_ms is None else float(self.budget_ms)

    @property
    def reward_target_ms(self) -> float | None:
        target = self.target_ms if self.target_ms is not None else self.budget_ms
        return None if target is None or target == float("inf") else float(target)


@dataclass(frozen=True)
class MultiObjective:
    """How a strategy scores a result against several devices (see the module docstring).
    reward: "accuracy", "soft", "hard" or "custom" (alpha/beta), the same exponents on every device."""

    devices: tuple[DeviceBudget, ...]
    goal: str = "joint"
    reward: str = "soft"
    alpha: float | None = None
    beta: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "devices", tuple(self.devices))
        if len(self.devices) < 2:
            raise SearchError(f"a multi-device objective needs two or more devices, got {len(self.devices)}")
        if self.goal not in GOALS:
            raise SearchError(f"goal {self.goal!r} is not one of {', '.join(GOALS)}")
        check_reward(self.reward, self.alpha, self.beta)

    # ------------------------------------------------------------------ what strategies read
    @property
    def table(self) -> str:
        """The primary table (the study's second value)."""
        return self.devices[0].table

    @property
    def tables(self) -> list[str]:
        return [d.table for d in self.devices]

    @property
    def limits_ms(self) -> np.ndarray:
        return np.array([d.limit_ms for d in self.devices])

    @property
    def limit_ms(self) -> float | None:
        """Not None when some device has a hard budget (then strategies check `feasible`)."""
        finite = [d.limit_ms for d in self.devices if np.isfinite(d.limit_ms)]
        return max(finite) if finite else None

    @property
    def n_latencies(self) -> int:
        return len(self.devices)

    @property
    def exponents(self) -> tuple[float, float]:
        return reward_exponents(self.reward, self.alpha, self.beta)

    def feasible(self, latency_ms: np.ndarray) -> np.ndarray:
        """Mask of the rows of an (n, devices) latency matrix that meet every budget (joint) or at
        least one (per_device)."""
        within = np.asarray(latency_ms, dtype=float) <= self.limits_ms[None, :]
        return within.all(axis=1) if self.goal == "joint" else within.any(axis=1)

    def latencies(self, result: ResultLike) -> list[float]:
        lat = result.latency_ms
        missing = [t for t in self.tables if t not in lat]
        if missing:
            raise SearchError(f"result has no latency for table(s) {missing}; it has {sorted(lat)}")
        return [float(lat[t]) for t in self.tables]

    def latency(self, result: ResultLike) -> float:
        """Latency on the primary table."""
        return self.latencies(result)[0]

    def factor(self, i: int, latency_ms: float) -> float:
        """Device i's MnasNet factor ``(LAT/T)^w`` (1 without a target or with reward accuracy)."""
        target = self.devices[i].reward_target_ms
        if target is None or self.reward == "accuracy":
            return 1.0
        ratio = latency_ms / target
        return float(ratio ** reward_exponent(ratio, *self.exponents))

    def device_scores(self, result: ResultLike) -> list[float]:
        """Per device: ``ACC × (LAT_i/T_i)^w_i`` where the arch meets device i's budget, else -inf."""
        acc = float(result.accuracy)
        return [acc * self.factor(i, ms) if ms <= d.limit_ms else float("-inf")
                for i, (d, ms) in enumerate(zip(self.devices, self.latencies(result)))]

    def score(self, result: ResultLike) -> float:
        """joint: ``ACC × Π_i (LAT_i/T_i)^w_i``; per_device: the best device score among the budgets
        it meets (the joint product when it meets none)."""
        acc, lat = float(result.accuracy), self.latencies(result)
        if self.goal == "per_device":
            scores = [s for s in self.device_scores(result) if s > float("-inf")]
            if scores:
                return max(scores)
        return float(acc * np.prod([self.factor(i, ms) for i, ms in enumerate(lat)]))

    def describe_table(self) -> str:
        return ", ".join(self.tables)

    def infeasible_message(self, fastest_ms: Sequence[float], n_sampled: int) -> str:
        budgets = ", ".join(f"{d.table} {d.limit_ms:g} ms" for d in self.devices)
        fastest = ", ".join(f"{t} {ms:.3g} ms" for t, ms in zip(self.tables, fastest_ms))
        need = "every budget" if self.goal == "joint" else "any budget"
        return (f"no arch in this space meets {need} ({budgets}; goal {self.goal}); fastest of {n_sampled} sampled "
                f"per table: {fastest}; raise the budgets or shrink the space")
