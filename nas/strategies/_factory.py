"""`make_strategy`: build a strategy by its explicit name from a plain config mapping."""

from __future__ import annotations

from typing import Any, Mapping

from nas._config import load
from nas._space import SearchSpace
from nas.strategies._base import Strategy
from nas.strategies._evolution import Evolution, EvolutionConfig
from nas.strategies._multi import MultiObjective
from nas.strategies._objective import LatencyFn, Objective, SearchError
from nas.strategies._optuna import OptunaConfig, OptunaStrategy
from nas.strategies._random import RandomConfig, RandomSearch
from nas.strategies._rl import RLConfig, RLController

STRATEGIES: dict[str, tuple[type[Strategy], type, dict[str, Any]]] = {
    "random": (RandomSearch, RandomConfig, {}),
    "evolution": (Evolution, EvolutionConfig, {"mode": "ofa"}),
    "aging": (Evolution, EvolutionConfig, {"mode": "aging"}),
    "rl": (RLController, RLConfig, {}),
    "tpe": (OptunaStrategy, OptunaConfig, {"sampler": "tpe"}),
    "nsga2": (OptunaStrategy, OptunaConfig, {"sampler": "nsga2"}),
}
"""Strategy names and what they build: (class, its config dataclass, fixed config values)."""


def strategy_names() -> list[str]:
    return list(STRATEGIES)


def make_config(name: str, config: Mapping[str, Any] | None = None, where: str = "") -> Any:
    """The config dataclass of strategy `name` from a mapping (at key path `where`): `ConfigError`
    naming an unknown, missing or mistyped option; its value checks raise `SearchError`."""
    if name not in STRATEGIES:
        raise SearchError(f"unknown strategy {name!r}; strategies: {', '.join(STRATEGIES)}")
    _, config_cls, fixed = STRATEGIES[name]
    return load(config_cls, config or {}, where, fixed)


def make_strategy(name: str, space: SearchSpace, config: Mapping[str, Any] | None = None, *, seed: int,
                  objective: Objective | MultiObjective | None = None, latency_fn: LatencyFn | None = None,
                  max_tries: int = 50) -> Strategy:
    """Build strategy `name` ("random", "evolution", "aging", "rl", "tpe", "nsga2") for `space`.

    config: the strategy's options (see its config dataclass); seed: its RNG seed; objective: what
    it maximizes and the latency budget; latency_fn: the batch latency predictor of option-index
    rows (a latency source's ``predict_rows``) that rejects archs over budget before they are
    evaluated (the objective's budget_ms, default its target_ms); for a `MultiObjective` it returns
    an (n, devices) matrix, one column per device.
    """
    cfg = make_config(name, config)  # raises naming an unknown strategy or option
    cls = STRATEGIES[name][0]
    strategy = cls(space, cfg, seed=seed, objective=objective, latency_fn=latency_fn,  # type: ignore[call-arg]
                   max_tries=max_tries)
    strategy.name = name  # "aging" / "tpe" / "nsga2" state dicts name what built them
    return strategy
