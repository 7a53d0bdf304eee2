"""From a config to the parts of a search, every one checked before anything is written.

`prepare_search(config)` builds the space, the latency sources (table files exist, load and cover
the space), the budget and objective, each strategy (an ask/tell one constructed once and discarded,
a deriving one kept), the storage URL and the evaluator (checkpoint, predictor file, dataset); any
problem is a `ConfigError` naming the config key. `run_search` calls it before it creates the run folder.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import nas
from nas._errors import HwnasError
from nas._space import SearchSpace
from nas.evaluators import (
    EvaluatorBase,
    LatencySource,
    MacsProxy,
    PredictorEvaluator,
    SupernetEvaluator,
    SyntheticEvaluator,
    TableLatency,
    TrainEvaluator,
    load_accuracy_predictor,
)
from nas.experiment._config import (DERIVING_STRATEGIES, EVALUATORS, ConfigError, ExperimentConfig, StrategyConfig,
                                    budgeted_tables)
from nas.experiment._standins import StandIns
from nas.experiment._storage import check_storage
from nas.proxyless import ProxylessStrategy
from nas.strategies import DerivingStrategy, DeviceBudget, MultiObjective, Objective, make_strategy


# ---------------------------------------------------------------------- building blocks
def build_space(config: ExperimentConfig) -> SearchSpace:
    s = config.space
    try:
        return nas.load_space(s.name, resolutions=s.resolutions, num_classes=s.num_classes,
                              in_channels=s.in_channels, width_mult=s.width_mult, stem_stride=s.stem_stride)
    except (HwnasError, FileNotFoundError) as err:
        raise ConfigError(f"space: {err}") from None


def build_latency(config: ExperimentConfig, space: SearchSpace) -> list[LatencySource]:
    """The latency sources of the config's tables (the first is the primary); checks coverage."""
    if not config.latency.tables:
        raise ConfigError("latency.tables is missing or empty: give a table path (or 'macs-proxy')")
    sources: list[LatencySource] = []
    for i, t in enumerate(config.latency.tables):
        if t.is_proxy:
            sources.append(MacsProxy(space, t.gmacs_per_s, name=t.source_name))
            continue
        from nas.latency import LatencyTable

        if not Path(t.path).is_file():
            raise ConfigError(f"latency.tables.{i}.path: latency table {t.path!r} does not exist (build one "
                              "with `nas latency build`, or pick one of latency_tables/)")
        try:
            table = LatencyTable.load(t.path)
            table.check_covers(space)  # names the block keys the table lacks
        except HwnasError as err:
            raise ConfigError(f"latency.tables.{i}.path: {err}") from None
        check_table_dtype(i, t.path, t.dtype, table.dtype)
        sources.append(TableLatency(table, space, name=t.source_name, check=False))
    check_mixed_dtypes(config, sources)
    return sources


def check_table_dtype(i: int, path: str, expected: str | None, actual: str) -> None:
    """`ConfigError` naming both dtypes when table `i` is not of the dtype its config entry says."""
    if expected is not None and expected != actual:
        raise ConfigError(f"latency.tables.{i}.dtype: the config expects {expected} latency but {path!r} is a table "
                          f"of {actual} models (built with --dtype {actual}); use a {expected} table or set "
                          f"latency.tables.{i}.dtype: {actual}")


def check_mixed_dtypes(config: ExperimentConfig, sources: Sequence[LatencySource]) -> None:
    """Tables of different dtypes in one search are refused unless each config entry says its dtype
    (then mixing is a choice, e.g. fp32 and int8 fronts of one search), naming both dtypes."""
    from nas.latency import LatencyTable

    dtypes = {i: s.table.dtype for i, s in enumerate(sources)
              if isinstance(getattr(s, "table", None), LatencyTable)}
    if len(set(dtypes.values())) < 2:
        return
    unsaid = [i for i in dtypes if config.latency.tables[i].dtype is None]
    if unsaid:
        kinds = " and ".join(sorted(set(dtypes.values())))
        raise ConfigError(f"latency.tables mixes {kinds} tables ("
                          + ", ".join(f"{i}: {config.latency.tables[i].path} is {d}" for i, d in dtypes.items())
                          + f"); say each table's dtype (latency.tables.{unsaid[0]}.dtype, ...) to search with "
                          "both, or use tables of one dtype")


def resolve_budget_ms(config: ExperimentConfig, space: SearchSpace, sources: Sequence[LatencySource]) -> float | None:
    """The hard budget: `latency.budget_ms`, or `latency.budget_quantile` of 1000 random archs
    (seeded by the config's seed, so every worker and every rerun gets the same figure). The config
    loader has checked the two keys (one of them, a quantile in (0, 1))."""
    lat = config.latency
    if lat.budget_quantile is None:
        return lat.budget_ms
    rng = np.random.default_rng([config.seed, 0xB0D6E7])
    latencies = sources[0].predict_many([space.sample(rng) for _ in range(1000)])
    return float(f"{np.quantile(latencies, lat.budget_quantile):.4g}")


def resolve_budgets(config: ExperimentConfig, space: SearchSpace, sources: Sequence[LatencySource]
                    ) -> list[dict[str, Any]]:
    """Each budgeted table's resolved budget (`budgeted_tables`), in table order: ``{"table", "budget_ms",
    "budget_quantile", "target_ms"}``. A quantile is taken over the same 1000 seeded random archs on every
    table (the first table's figure is `resolve_budget_ms`'s)."""
    lat, out = config.latency, []
    archs = None
    for i in budgeted_tables(config):
        t = config.latency.tables[i]  # type: ignore[index]
        budget, quantile, target = t.budget_ms, t.budget_quantile, t.target_ms
        if i == 0 and not t.has_budget:
            budget, quantile, target = lat.budget_ms, lat.budget_quantile, lat.target_ms
        if quantile is not None:
            if archs is None:
                rng = np.random.default_rng([config.seed, 0xB0D6E7])
                archs = [space.sample(rng) for _ in range(1000)]
            budget = float(f"{np.quantile(sources[i].predict_many(archs), quantile):.4g}")
        out.append({"table": sources[i].name, "budget_ms": budget, "budget_quantile": quantile, "target_ms": target})
    return out


def build_objective(config: ExperimentConfig, sources: Sequence[LatencySource], budget_ms: float | None,
                    budgets: Sequence[dict[str, Any]] = ()) -> Objective | MultiObjective:
    """What every strategy of the experiment optimizes, with the budget already resolved (`resolve_budget_ms`);
    a `MultiObjective` when two or more tables carry a budget (`budgets`, from `resolve_budgets`)."""
    lat = config.latency
    if len(budgets) >= 2:
        devices = tuple(DeviceBudget(b["table"], b["budget_ms"], b["target_ms"]) for b in budgets)
        return MultiObjective(devices, goal=lat.goal or "joint", reward=lat.reward, alpha=lat.alpha, beta=lat.beta)
    target_ms = budgets[0]["target_ms"] if budgets else lat.target_ms
    target = target_ms if target_ms is not None else budget_ms
    budget = budget_ms if budget_ms is not None else (float("inf") if target is not None else None)
    return Objective(table=sources[0].name, target_ms=target, budget_ms=budget, reward=lat.reward,
                     alpha=lat.alpha, beta=lat.beta)


def _options(fn: Callable[..., Any], given: dict[str, Any], where: str, skip: Sequence[str] = ()) -> None:
    """Unknown or missing keyword options of `fn`, named as `where`.KEY."""
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in ("self", "cls", *skip)]
    allowed = [p.name for p in params]
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {unknown}; options: {allowed}")
    missing = [p.name for p in params if p.default is p.empty and p.name not in given]
    if missing:
        raise ConfigError(f"{where}: missing option(s) {missing}")


def _existing_file(path: Any, key: str, hint: str) -> None:
    if not isinstance(path, (str, Path)) or not Path(path).is_file():
        raise ConfigError(f"{key}: file {str(path)!r} does not exist; {hint}")


def _dataset(name: Any, root: Any, key: str) -> None:
    """The dataset `name` (a name or a directory) is on this machine."""
    from nas.data import DatasetError, find_dataset_root

    if isinstance(name, (str, Path)) and Path(name).is_dir():
        return
    try:
        find_dataset_root(str(name), root)
    except DatasetError as err:
        raise ConfigError(f"{key}: {err}") from None


def build_evaluator(config: ExperimentConfig, space: SearchSpace, sources: Sequence[LatencySource]) -> EvaluatorBase:
    """The config's evaluator; unknown or missing options, missing files and data name their key."""
    name, opts = config.evaluator.name, dict(config.evaluator.options)
    where = f"evaluator.options (evaluator {name!r})"
    hint = {"checkpoint": "train one with `nas supernet train --config experiments/supernet_fmnist.yaml`",
            "path": "fit one with `nas supernet fit-predictor`"}
    try:
        if name == "synthetic":
            _options(SyntheticEvaluator.__init__, opts, where, skip=("space", "latency"))
            return SyntheticEvaluator(space, sources, **{"seed": config.seed, **opts})
        if name == "train":
            _options(TrainEvaluator.__init__, opts, where, skip=("space", "latency"))
            _dataset(opts.get("dataset", "fashion_mnist_tiny"), opts.get("root"), "evaluator.options.dataset")
            return TrainEvaluator(space, sources, **{"seed": config.seed, **opts})
        if name == "supernet":
            _options(SupernetEvaluator.from_checkpoint, opts, where, skip=("space", "latency"))
            _existing_file(opts["checkpoint"], "evaluator.options.checkpoint", hint["checkpoint"])
            return SupernetEvaluator.from_checkpoint(space, sources, **opts)
        if name == "predictor":
            from nas.supernet import load_accuracy_predictor as load

            _options(load, opts, where, skip=("space",))
            _existing_file(opts["path"], "evaluator.options.path", hint["path"])
            return PredictorEvaluator(space, load_accuracy_predictor(space, **opts), sources)
    except ConfigError:
        raise
    except (HwnasError, TypeError, ValueError) as err:
        raise ConfigError(f"evaluator {name!r}: {err}") from None
    raise ConfigError(f"evaluator.name: unknown evaluator {name!r}; evaluators: {', '.join(EVALUATORS)}")


# ---------------------------------------------------------------------- strategies
def strategy_latency_fn(sources: Sequence[LatencySource], objective: Objective | MultiObjective
                        ) -> Callable[[np.ndarray], np.ndarray]:
    """The batch predictor a strategy checks budgets with: the primary table's, or for a
    `MultiObjective` an (n, devices) matrix, one column per device."""
    if not isinstance(objective, MultiObjective):
        return sources[0].predict_rows
    by_name = {s.name: s for s in sources}
    fns = [by_name[t].predict_rows for t in objective.tables]
    return lambda rows: np.stack([np.asarray(f(rows), dtype=float) for f in fns], axis=1)


def build_strategy(config: ExperimentConfig, sc: StrategyConfig, space: SearchSpace,
                   sources: Sequence[LatencySource], objective: Objective | MultiObjective
                   ) -> DerivingStrategy | None:
    """Check strategy `sc` against `space` and the objective: an ask/tell one is built once and
    discarded (each worker builds its own, seeded by its first trial); a deriving one is returned."""
    where = f"strategy {sc.key!r}"
    try:
        if sc.name in DERIVING_STRATEGIES:
            if isinstance(objective, MultiObjective):  # the config loader says so first
                raise ConfigError(f"{where}: {sc.name} takes one budgeted latency table per run")
            tables = [getattr(s, "table", None) for s in sources]
            strategy = DERIVING_STRATEGIES[sc.name].build(space, tables, objective, sc.options, seed=config.seed,
                                                          n_derived=config.search.n_trials)
            if isinstance(strategy, ProxylessStrategy):
                _dataset(strategy.config.dataset, None, f"{where}: options.dataset")
            return strategy
        make_strategy(sc.name, space, sc.options, seed=config.seed, objective=objective,
                      latency_fn=strategy_latency_fn(sources, objective), max_tries=config.search.max_tries)
    except ConfigError:
        raise
    except (HwnasError, TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None
    return None


# ---------------------------------------------------------------------- everything, before acting
@dataclass
class SearchSetup:
    """The checked parts of a search (`prepare_search`)."""

    config: ExperimentConfig
    space: SearchSpace
    sources: list[LatencySource]
    evaluator: EvaluatorBase
    budget_ms: float | None
    """The hard budget (ms on the primary table), resolved once from budget_ms or budget_quantile."""
    objective: Objective | MultiObjective
    """What every strategy optimizes, built once from the resolved budget(s)."""
    deriving: dict[str, DerivingStrategy]
    """The deriving strategies that will run (ProxylessNAS), by label, built from `objective`."""
    stand_ins: StandIns
    machine_warnings: list[str]
    """One line per latency table measured on another machine or runtime (`machine_warnings`)."""
    budgets: list[dict[str, Any]] = dataclass_field(default_factory=list)
    """Each budgeted table's resolved budget (`resolve_budgets`); two or more: a multi-device search."""
    goal: str | None = None
    """joint | per_device for a multi-device search, else None."""


def machine_warnings(sources: Sequence[LatencySource]) -> list[str]:
    """A line for each table of `sources` whose fingerprint differs from this machine's."""
    from nas.latency import LatencyTable, machine_warning

    tables = [s.table for s in sources if isinstance(getattr(s, "table", None), LatencyTable)]
    return [w for w in (machine_warning(t) for t in tables) if w]


def prepare_search(config: ExperimentConfig, strategies: Sequence[str] | None = None) -> SearchSetup:
    """Check the whole config against its files and build the search's parts; writes nothing.
    `strategies`: the labels that will run (default: all); only theirs are built."""
    space = build_space(config)
    sources = build_latency(config, space)
    budgets = resolve_budgets(config, space, sources)
    budget_ms = budgets[0]["budget_ms"] if budgets else None  # the first table's (the loader checked it is first)
    objective = build_objective(config, sources, budget_ms, budgets)
    deriving = {}
    for sc in config.strategies:
        if not strategies or sc.key in strategies:
            strategy = build_strategy(config, sc, space, sources, objective)
            if strategy is not None:
                deriving[sc.key] = strategy
    names = space.preset_names
    unknown = sorted(set(config.results.presets or []) - set(names) - set(space.preset_family_names))
    if unknown:
        raise ConfigError(f"results.presets: unknown preset(s) {unknown} of space {space.name!r}; presets: "
                          f"{[*names, *space.preset_family_names]}")
    if Path(config.run_dir).exists() and not Path(config.run_dir).is_dir():
        raise ConfigError(f"run_dir: {config.run_dir!r} exists and is not a folder")
    check_storage(config)
    evaluator = build_evaluator(config, space, sources)
    goal = objective.goal if isinstance(objective, MultiObjective) else None
    return SearchSetup(config, space, sources, evaluator, budget_ms, objective, deriving, StandIns.of(config),
                       machine_warnings(sources), budgets, goal)
