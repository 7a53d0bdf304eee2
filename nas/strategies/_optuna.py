"""Optuna samplers as strategies: TPE on the (MnasNet) reward, NSGA-II on accuracy and latency.

The space is driven through `SearchSpace.dims`: one `CategoricalDistribution` per named choice,
`decode` of the sampled params gives the arch and `encode` of a told arch gives its params, so
archs found elsewhere are added to the sampler's history as completed trials. The sampler lives
in an in-memory study of its own; the experiment runner's persistent study records the trials.
The strategy's state is plain data: the log of what was asked and told, in order. A restored
strategy replays the log through a fresh sampler with the same seed, which brings the sampler's
RNG and caches to the same state without touching Optuna's internals.
Candidates that miss the latency budget are told to the sampler as poor results (reward 0, or
accuracy 0 for NSGA-II) without being evaluated, a bounded number of times per ask.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution

from nas._arch import Arch
from nas.strategies._base import Strategy
from nas.strategies._objective import ResultLike, SearchError


@dataclass(frozen=True)
class OptunaConfig:
    sampler: str = "tpe"
    """"tpe" (single objective: the reward) or "nsga2" (accuracy up, latency down)."""
    n_startup_trials: int = 10
    """TPE: random trials before the model is used."""
    multivariate: bool = True
    """TPE: model the choices jointly (Optuna's multivariate TPE)."""
    population: int = 20
    """NSGA-II population size."""
    mutation_prob: float | None = None
    """NSGA-II: probability of mutating each choice (null: Optuna's default, 1 / number of choices)."""
    crossover_prob: float = 0.9
    """NSGA-II: probability that a child is bred by crossover."""

    def __post_init__(self) -> None:
        if self.sampler not in ("tpe", "nsga2"):
            raise SearchError(f"optuna sampler {self.sampler!r} is not one of tpe, nsga2")
        if self.population < 2 or self.n_startup_trials < 0:
            raise SearchError("optuna: population >= 2, n_startup_trials >= 0")


class OptunaStrategy(Strategy):
    name = "optuna"

    def __init__(self, space: Any, config: OptunaConfig | None = None, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        self.config = config or OptunaConfig()
        self.distributions = {name: CategoricalDistribution(list(opts))
                              for name, opts in zip(self.codec.names, self.codec.options)}
        self._study = self._new_study(self._make_sampler())
        self._pending: dict[Arch, list[int]] = {}
        self._log: list[list[Any]] = []
        """["ask", params] | ["tell", number, values] | ["add", params, values], in order."""

    @property
    def multi_objective(self) -> bool:
        return self.config.sampler == "nsga2"

    def _make_sampler(self) -> optuna.samplers.BaseSampler:
        cfg = self.config
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if cfg.sampler == "tpe":
                return optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=cfg.n_startup_trials,
                                                  multivariate=cfg.multivariate)
            return optuna.samplers.NSGAIISampler(seed=self.seed, population_size=cfg.population,
                                                 mutation_prob=cfg.mutation_prob,
                                                 crossover_prob=cfg.crossover_prob)

    def _new_study(self, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
        n_lat = int(getattr(self.objective, "n_latencies", 1))  # one latency objective per device
        directions = ["maximize", *["minimize"] * n_lat] if self.multi_objective else ["maximize"]
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.create_study(storage=optuna.storages.InMemoryStorage(), sampler=sampler,
                                   directions=directions)

    # ------------------------------------------------------------------ ask / tell
    def ask(self) -> Arch:
        asked: list[int] = []

        def propose(n: int) -> np.ndarray:  # one Optuna trial per proposal
            trial = self._study.ask(self.distributions)
            self._log.append(["ask", dict(trial.params)])
            asked.append(trial.number)
            return self.codec.row_from_choices(trial.params)[None]

        def reject(latency_ms: np.ndarray) -> None:  # the sampler learns that this region is infeasible
            row = np.atleast_1d(latency_ms[0])  # the primary latency, or one per device
            self._tell_number(asked[-1], [0.0, *map(float, row)] if self.multi_objective else [0.0])

        (arch,) = self.draw_feasible(propose, 1, on_reject=reject)
        self._pending.setdefault(arch, []).append(asked[-1])
        return arch

    def _values(self, result: ResultLike) -> list[float]:
        if self.multi_objective and hasattr(self.objective, "latencies"):  # one latency per device
            return [float(result.accuracy), *self.objective.latencies(result)]  # type: ignore[union-attr]
        if self.multi_objective:
            return [float(result.accuracy), self.objective.latency(result)]
        return [self.objective.score(result)]

    def tell(self, arch: Arch, result: ResultLike) -> None:
        values = self._values(result)
        numbers = self._pending.get(arch)
        if numbers:
            number = numbers.pop(0)
            if not numbers:
                del self._pending[arch]
            self._tell_number(number, values)
            return
        self._add(self.codec.choices(self.codec.encode(arch)), values)

    def _tell_number(self, number: int, values: list[float]) -> None:
        self._study.tell(number, values)
        self._log.append(["tell", int(number), [float(v) for v in values]])

    def _add(self, params: dict[str, Any], values: list[float]) -> None:
        self._study.add_trial(optuna.trial.create_trial(params=params, distributions=self.distributions,
                                                        values=values))
        self._log.append(["add", dict(params), [float(v) for v in values]])

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {**self._base_state(), "log": [list(e) for e in self._log],
                "pending": [(a.to_dict(), list(n)) for a, n in self._pending.items()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_state(state)
        self.seed = int(state["seed"])
        self._study = self._new_study(self._make_sampler())
        self._log = []
        for event in state["log"]:
            if event[0] == "ask":
                trial = self._study.ask(self.distributions)
                if trial.params != event[1]:
                    raise ValueError(f"optuna strategy: replaying the saved history proposed {trial.params} "
                                     f"where the original proposed {event[1]} (another Optuna version?)")
                self._log.append(["ask", dict(trial.params)])
            elif event[0] == "tell":
                self._tell_number(int(event[1]), list(event[2]))
            elif event[0] == "add":
                self._add(dict(event[1]), list(event[2]))
            else:
                raise ValueError(f"optuna strategy: unknown event {event[0]!r} in the saved state")
        self._pending = {Arch.from_dict(a): list(n) for a, n in state["pending"]}
