"""Several devices at once (`MultiObjective`): joint feasibility, per-device feasibility and elites,
one latency objective per device for NSGA-II, one MnasNet factor per device in the reward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nas
from nas.evaluators import Result, SyntheticEvaluator, TableLatency
from nas.latency import LatencyTable
from nas.strategies import (DeviceBudget, InfeasibleBudgetError, MultiObjective, SearchError, make_strategy,
                            mnas_reward)

ROOT = Path(__file__).resolve().parents[2]
TABLES = {name: ROOT / "latency_tables" / f"x86-2core_{name}_t1_ofa_mbv3_r28_w0.5.csv" for name in ("onnxruntime", "tflite")}


@pytest.fixture(scope="module")
def space() -> nas.SearchSpace:
    return nas.load_space("ofa_mbv3", resolutions=[28], num_classes=10, in_channels=1, width_mult=0.5)


@pytest.fixture(scope="module")
def sources(space) -> list[TableLatency]:
    """Two real cost models of one space: ONNX Runtime and TFLite (k7 blocks cost more there)."""
    return [TableLatency(LatencyTable.load(path), space, name=name[:3]) for name, path in TABLES.items()]


@pytest.fixture(scope="module")
def budgets(space, sources) -> tuple[float, float]:
    archs = [space.sample(np.random.default_rng(i)) for i in range(300)]
    return tuple(float(np.quantile(s.predict_many(archs), 0.3)) for s in sources)  # type: ignore[return-value]


def _objective(sources, budgets, goal: str, reward: str = "accuracy") -> MultiObjective:
    return MultiObjective(tuple(DeviceBudget(s.name, b) for s, b in zip(sources, budgets)), goal=goal, reward=reward)


def _latency_fn(sources):
    return lambda rows: np.stack([s.predict_rows(rows) for s in sources], axis=1)


def _search(name: str, options: dict, space, sources, objective, n: int = 60) -> list[Result]:
    evaluator = SyntheticEvaluator(space, sources, seed=7)
    strategy = make_strategy(name, space, options, seed=0, objective=objective, latency_fn=_latency_fn(sources))
    results = []
    for _ in range(n):
        arch = strategy.ask()
        result = evaluator.evaluate(arch)
        strategy.tell(arch, result)
        results.append(result)
    return results


def test_feasible_is_every_budget_when_joint_and_any_when_per_device() -> None:
    devices = (DeviceBudget("a", 1.0), DeviceBudget("b", 2.0))
    lat = np.array([[0.5, 1.5], [0.5, 2.5], [1.5, 1.5], [1.5, 2.5]])
    assert MultiObjective(devices, "joint").feasible(lat).tolist() == [True, False, False, False]
    assert MultiObjective(devices, "per_device").feasible(lat).tolist() == [True, True, True, False]
    with pytest.raises(SearchError, match="two or more"):
        MultiObjective(devices[:1])
    with pytest.raises(SearchError, match="goal"):
        MultiObjective(devices, "both")


@pytest.mark.parametrize("name,options", [("random", {}), ("evolution", {"population": 12}),
                                          ("aging", {"population": 12, "sample_size": 4}), ("rl", {"batch": 5}),
                                          ("nsga2", {"population": 10})])
def test_a_joint_search_never_returns_an_arch_over_any_budget(name, options, space, sources, budgets) -> None:
    results = _search(name, options, space, sources, _objective(sources, budgets, "joint", "soft"), n=40)
    for r in results:
        assert r.latency_ms["onn"] <= budgets[0] and r.latency_ms["tfl"] <= budgets[1]


def test_per_device_explores_each_budget_with_an_elite_per_device(space, sources, budgets) -> None:
    objective = _objective(sources, budgets, "per_device")
    results = _search("evolution", {"population": 12}, space, sources, objective, n=60)
    lat = np.array([[r.latency_ms["onn"], r.latency_ms["tfl"]] for r in results])
    within = lat <= np.array(budgets)[None, :]
    assert within.any(axis=1).all()  # every candidate meets at least one budget
    assert (within[:, 0] & ~within[:, 1]).any() and (within[:, 1] & ~within[:, 0]).any()  # and not only both
    assert objective.device_scores(results[0])[0] in (results[0].accuracy, float("-inf"))


def test_infeasible_joint_budget_names_every_table(space, sources) -> None:
    objective = _objective(sources, (1e-4, 1e-4), "joint")
    strategy = make_strategy("random", space, {}, seed=0, objective=objective, latency_fn=_latency_fn(sources),
                             max_tries=2)
    with pytest.raises(InfeasibleBudgetError, match=r"every budget \(onn 0.0001 ms, tfl 0.0001 ms"):
        strategy.ask()


def test_nsga2_gets_accuracy_plus_one_latency_objective_per_device(space, sources, budgets) -> None:
    objective = _objective(sources, budgets, "joint")
    strategy = make_strategy("nsga2", space, {"population": 6}, seed=0, objective=objective,
                             latency_fn=_latency_fn(sources))
    evaluator = SyntheticEvaluator(space, sources, seed=7)
    for _ in range(8):
        arch = strategy.ask()
        strategy.tell(arch, evaluator.evaluate(arch))
    study = strategy._study
    assert len(study.directions) == 3
    assert all(len(t.values) == 3 for t in study.get_trials() if t.values is not None)
    restored = make_strategy("nsga2", space, {"population": 6}, seed=0, objective=objective,
                             latency_fn=_latency_fn(sources))
    restored.load_state_dict(strategy.state_dict())
    assert restored.ask() == strategy.ask()


def test_rl_reward_has_one_mnasnet_factor_per_device() -> None:
    devices = (DeviceBudget("a", 2.0), DeviceBudget("b", 4.0, target_ms=5.0))
    result = Result(0.8, {"a": 3.0, "b": 2.5})
    for reward, (alpha, beta) in (("soft", (-0.07, -0.07)), ("hard", (0.0, -1.0))):
        objective = MultiObjective(devices, "joint", reward=reward)
        expected = 0.8 * (mnas_reward(1.0, 3.0, 2.0, alpha, beta) * mnas_reward(1.0, 2.5, 5.0, alpha, beta))
        assert objective.score(result) == pytest.approx(float(expected))
    assert MultiObjective(devices, "joint", reward="accuracy").score(result) == 0.8
    # per_device: the best device score among the budgets met (only b's here)
    per = MultiObjective(devices, "per_device", reward="soft")
    assert per.score(result) == pytest.approx(float(mnas_reward(0.8, 2.5, 5.0)))
    assert per.device_scores(result)[0] == float("-inf")
