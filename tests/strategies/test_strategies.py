"""One suite every strategy passes: archs in the space, reproducible, state round-trips, and on a
synthetic objective with a known optimum it beats random search at the same budget."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import nas
from nas.evaluators import MacsProxy, Result, SyntheticEvaluator
from nas.experiment._pareto import hypervolume
from nas.strategies import InfeasibleBudgetError, Objective, SearchError, make_strategy, mnas_reward, strategy_names

# small configs so a budget of ~150 trials means several generations / controller updates
CONFIGS = {
    "random": {},
    "evolution": {"population": 20, "parent_ratio": 0.25, "mutate_prob": 0.1},
    "aging": {"population": 20, "sample_size": 5, "mutate_prob": 0.1},
    "rl": {"batch": 5, "lr": 0.02},
    "tpe": {"n_startup_trials": 10},
    "nsga2": {"population": 16},
}


@pytest.fixture(scope="module")
def space() -> nas.SearchSpace:
    return nas.load_space("ofa_mbv3", resolutions=[32, 40], num_classes=10, in_channels=1)


@pytest.fixture(scope="module")
def evaluator(space: nas.SearchSpace) -> SyntheticEvaluator:
    return SyntheticEvaluator(space, [MacsProxy(space)], seed=123)


def _run(name: str, space, evaluator, seed: int, n: int, objective: Objective | None = None, strategy=None):
    strategy = strategy or make_strategy(name, space, CONFIGS[name], seed=seed, objective=objective)
    archs, results = [], []
    for _ in range(n):
        arch = strategy.ask()
        result = evaluator.evaluate(arch)
        strategy.tell(arch, result)
        archs.append(arch)
        results.append(result)
    return strategy, archs, results


def test_every_strategy_is_covered() -> None:
    assert set(CONFIGS) == set(strategy_names())


@pytest.mark.parametrize("name", strategy_names())
def test_archs_are_in_the_space_and_reproducible(name, space, evaluator) -> None:
    _, a, _ = _run(name, space, evaluator, seed=7, n=30)
    _, b, _ = _run(name, space, evaluator, seed=7, n=30)
    _, c, _ = _run(name, space, evaluator, seed=8, n=30)
    assert all(space.contains(x) for x in a)
    assert a == b
    assert a != c


@pytest.mark.parametrize("name", strategy_names())
def test_state_dict_round_trip_continues_identically(name, space, evaluator) -> None:
    original, _, _ = _run(name, space, evaluator, seed=3, n=23)  # mid-batch / mid-generation
    state = pickle.loads(pickle.dumps(original.state_dict()))
    restored = make_strategy(name, space, CONFIGS[name], seed=99)  # the seed comes from the state
    restored.load_state_dict(state)
    _, a, _ = _run(name, space, evaluator, seed=0, n=25, strategy=original)
    _, b, _ = _run(name, space, evaluator, seed=0, n=25, strategy=restored)
    assert a == b


@pytest.mark.parametrize("name", strategy_names())
def test_state_of_another_strategy_is_refused(name, space) -> None:
    other = "random" if name != "random" else "evolution"
    state = make_strategy(other, space, CONFIGS[other], seed=0).state_dict()
    with pytest.raises(ValueError):
        make_strategy(name, space, CONFIGS[name], seed=0).load_state_dict(state)


@pytest.mark.parametrize("name", [n for n in strategy_names() if n != "random"])
def test_beats_random_on_synthetic_objective(name, space, evaluator) -> None:
    budget, seeds = 150, range(3)
    lat_ref = float(evaluator.evaluate(space.preset("ofa_max", 40)).latency())

    def quality(results: list[Result]) -> float:
        acc = np.array([r.accuracy for r in results])
        if name == "nsga2":  # multi-objective: hypervolume of (accuracy, latency)
            return hypervolume(acc, np.array([r.latency() for r in results]), evaluator.low, lat_ref)
        return float(acc.max())

    ours = [quality(_run(name, space, evaluator, s, budget)[2]) for s in seeds]
    base = [quality(_run("random", space, evaluator, s, budget)[2]) for s in seeds]
    assert np.mean(ours) > np.mean(base) * 1.02, (ours, base)
    assert sum(o > b for o, b in zip(ours, base)) >= 2, (ours, base)


def test_optimum_is_known(space, evaluator) -> None:
    best = evaluator.evaluate(evaluator.optimum()).accuracy
    rng = np.random.default_rng(0)
    assert best == pytest.approx(evaluator.high)
    assert all(evaluator.evaluate(space.sample(rng)).accuracy < best for _ in range(200))


def test_mnas_reward_soft_and_hard() -> None:
    soft, hard = Objective(target_ms=2.0, reward="soft"), Objective(target_ms=2.0, reward="hard")
    assert soft.reward_of(0.8, 2.0) == pytest.approx(0.8)
    assert soft.reward_of(0.8, 1.0) == pytest.approx(0.8 * 0.5 ** -0.07)
    assert soft.reward_of(0.8, 4.0) == pytest.approx(0.8 * 2 ** -0.07)
    assert hard.reward_of(0.8, 1.0) == pytest.approx(0.8)
    assert hard.reward_of(0.8, 4.0) == pytest.approx(0.4)
    np.testing.assert_allclose(mnas_reward([0.8, 0.8], [1.0, 4.0], 2.0, 0.0, -1.0), [0.8, 0.4])
    assert Objective(reward="accuracy", target_ms=1.0).reward_of(0.7, 5.0) == 0.7
    with pytest.raises(SearchError, match="reward"):
        Objective(reward="bogus")


@pytest.mark.parametrize("name", strategy_names())
def test_budget_rejects_before_evaluation(name, space) -> None:
    proxy = MacsProxy(space)
    rng = np.random.default_rng(0)
    lats = proxy.predict_many([space.sample(rng) for _ in range(200)])
    target = float(np.quantile(lats, 0.3))
    strategy = make_strategy(name, space, CONFIGS[name], seed=0, objective=Objective(target_ms=target),
                             latency_fn=proxy.predict_rows)
    evaluator = SyntheticEvaluator(space, [proxy], seed=1)
    _, archs, _ = _run(name, space, evaluator, 0, 30, strategy=strategy)
    assert (proxy.predict_many(archs) <= target).all()


@pytest.mark.parametrize("name", strategy_names())
def test_infeasible_budget_is_one_clear_error(name, space) -> None:
    proxy = MacsProxy(space, name="cpu-table")
    strategy = make_strategy(name, space, CONFIGS[name], seed=0, max_tries=3,
                             objective=Objective(table="cpu-table", target_ms=1e-6), latency_fn=proxy.predict_rows)
    with pytest.raises(InfeasibleBudgetError, match=r"no arch in this space meets 1e-06 ms on cpu-table"):
        strategy.ask()


def test_unknown_strategy_and_option_are_named(space) -> None:
    with pytest.raises(SearchError, match="unknown strategy 'bogus'"):
        make_strategy("bogus", space, seed=0)
    with pytest.raises(nas.ConfigError, match=r"popsize: unknown key"):
        make_strategy("evolution", space, {"popsize": 3}, seed=0)


@pytest.mark.parametrize("name", strategy_names())
def test_mnasnet_space_archs_and_budget(name) -> None:
    """The factorized MnasNet space (per-stage op/kernel/se/skip/width/depth) works as well."""
    space = nas.load_space("mnasnet", resolutions=[64], num_classes=10, in_channels=1)
    proxy = MacsProxy(space)
    rng = np.random.default_rng(0)
    target = float(np.median(proxy.predict_many([space.sample(rng) for _ in range(100)])))
    objective = Objective(target_ms=target, reward="hard")
    evaluator = SyntheticEvaluator(space, [proxy], seed=2)
    strategy = make_strategy(name, space, CONFIGS[name], seed=0, objective=objective, latency_fn=proxy.predict_rows)
    _, archs, results = _run(name, space, evaluator, 0, 25, strategy=strategy)
    assert all(space.contains(a) for a in archs)
    assert all(r.latency() <= target for r in results)


def test_soft_target_without_budget_does_not_reject(space) -> None:
    proxy = MacsProxy(space)
    objective = Objective(target_ms=1e-6, budget_ms=float("inf"))
    strategy = make_strategy("evolution", space, CONFIGS["evolution"], seed=0, objective=objective,
                             latency_fn=proxy.predict_rows)
    arch = strategy.ask()  # a soft target never makes the space infeasible
    assert space.contains(arch)


@pytest.mark.parametrize("name", ["tpe", "nsga2"])
def test_optuna_state_is_plain_data(name, space, evaluator) -> None:
    """No pickled library internals: the state survives JSON and restores the same proposals."""
    import json

    original, _, _ = _run(name, space, evaluator, seed=5, n=21)
    state = json.loads(json.dumps(original.state_dict()))
    restored = make_strategy(name, space, CONFIGS[name], seed=0)
    restored.load_state_dict(state)
    assert original.ask() == restored.ask()
