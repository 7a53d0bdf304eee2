"""Search strategies behind one ask/tell interface (random, evolution, RL controller, Optuna).

    from nas.strategies import Objective, make_strategy
    strategy = make_strategy("evolution", space, {"population": 50}, seed=0,
                             objective=Objective(target_ms=3.0), latency_fn=source.predict_rows)
    arch = strategy.ask(); strategy.tell(arch, evaluator.evaluate(arch))
"""

from nas.strategies._base import DerivingStrategy, Strategy
from nas.strategies._evolution import Evolution, EvolutionConfig
from nas.strategies._multi import GOALS, DeviceBudget, MultiObjective
from nas.strategies._factory import STRATEGIES, make_config, make_strategy, strategy_names
from nas.strategies._objective import (REWARD_PRESETS, InfeasibleBudgetError, LatencyFn, Objective, SearchError,
                                       mnas_reward, reward_exponent)
from nas.strategies._optuna import OptunaConfig, OptunaStrategy
from nas.strategies._random import RandomConfig, RandomSearch
from nas.strategies._rl import Controller, RLConfig, RLController

__all__ = ["GOALS", "DeviceBudget", "MultiObjective", "REWARD_PRESETS", "STRATEGIES", "Controller", "DerivingStrategy", "Evolution", "EvolutionConfig",
           "InfeasibleBudgetError", "LatencyFn", "Objective", "OptunaConfig", "OptunaStrategy", "RLConfig",
           "RLController", "RandomConfig", "RandomSearch", "SearchError", "Strategy", "make_config",
           "make_strategy", "mnas_reward", "reward_exponent", "strategy_names"]
