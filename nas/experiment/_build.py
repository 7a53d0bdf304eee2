"""From a config to the parts of a search, every one checked before anything is written.

`prepare_search(config)` builds the space, the latency sources (table files exist, load and cover
the space), the budget and objective, each strategy (constructed once, then discarded), the
storage URL and the evaluator (checkpoint, predictor file, dataset); any problem is a
`ConfigError` naming the config key. `run_search` calls it before it creates the run folder.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import optuna

import nas
from nas._errors import HwnasError
from nas._space import SearchSpace
from nas.evaluators import (
    EvaluatorBase,
    LatencySource,
    MacsProxy,
    PredictorEvaluator,
    SyntheticEvaluator,
    TableLatency,
    TrainEvaluator,
)
from nas.experiment._config import EVALUATORS, ConfigError, ExperimentConfig, StrategyConfig
from nas.experiment._standins import StandIns
from nas.strategies import Objective, make_strategy

EXTERNAL_STRATEGIES = {"proxyless": "nas.proxyless:search"}
"""Strategies outside ask/tell (they run their own loop): name -> "module:function", imported on use.
The function is called as ``fn(config, strategy_config, space, sources, evaluator, record)`` and
persists each arch it derives with ``record(arch, result, extra=None)`` (a completed trial)."""

SQLITE_TIMEOUT_S = 30
"""SQLite busy timeout: concurrent workers wait for the lock instead of failing."""
HEARTBEAT_S = 20
"""A worker evaluating a trial records a heartbeat this often (RDB storages)."""
GRACE_S = 60
"""A RUNNING trial whose heartbeat is older than this belongs to a dead worker (any host) and is failed."""


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
        sources.append(TableLatency(table, space, name=t.source_name, check=False))
    return sources


def resolve_budget_ms(config: ExperimentConfig, space: SearchSpace, sources: Sequence[LatencySource]) -> float | None:
    """The hard budget: `latency.budget_ms`, or `latency.budget_quantile` of 1000 random archs
    (seeded by the config's seed, so every worker and every rerun gets the same figure)."""
    lat = config.latency
    if lat.budget_quantile is None:
        return lat.budget_ms
    if lat.budget_ms is not None:
        raise ConfigError("give latency.budget_ms or latency.budget_quantile, not both")
    if not 0 < lat.budget_quantile < 1:
        raise ConfigError(f"latency.budget_quantile must be in (0, 1), got {lat.budget_quantile}")
    rng = np.random.default_rng([config.seed, 0xB0D6E7])
    latencies = sources[0].predict_many([space.sample(rng) for _ in range(1000)])
    return float(f"{np.quantile(latencies, lat.budget_quantile):.4g}")


def build_objective(config: ExperimentConfig, sources: Sequence[LatencySource], space: SearchSpace | None = None
                    ) -> Objective:
    lat = config.latency
    budget_ms = resolve_budget_ms(config, space, sources) if space is not None else lat.budget_ms
    target = lat.target_ms if lat.target_ms is not None else budget_ms
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
    from nas.evaluators._supernet import SupernetEvaluator

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
            from nas.evaluators._supernet import load_accuracy_predictor
            from nas.supernet import load_accuracy_predictor as load

            _options(load, opts, where, skip=("space",))
            _existing_file(opts["path"], "evaluator.options.path", hint["path"])
            return PredictorEvaluator(space, load_accuracy_predictor(space, **opts), sources)
    except ConfigError:
        raise
    except (HwnasError, TypeError, ValueError) as err:
        raise ConfigError(f"evaluator {name!r}: {err}") from None
    raise ConfigError(f"evaluator.name: unknown evaluator {name!r}; evaluators: {', '.join(EVALUATORS)}")


# ---------------------------------------------------------------------- storage
def storage_url(config: ExperimentConfig) -> str:
    if config.search.storage:
        return config.search.storage
    return f"sqlite:///{Path(config.run_dir).resolve() / 'study.db'}"


def _is_journal(url: str) -> bool:
    return url.startswith("journal:") or url.endswith((".log", ".journal"))


def postgres_driver(url: str) -> str:
    """A bare ``postgresql://`` URL with the driver that is installed: SQLAlchemy 2.1 reads it as
    psycopg 3, while `hwnas[postgres]` installs psycopg2."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL; a path ending in .log/.journal (or journal:PATH) is a journal file."""
    import warnings

    if _is_journal(url):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    kwargs: dict[str, Any] = {"heartbeat_interval": HEARTBEAT_S, "grace_period": GRACE_S}
    url = postgres_driver(url)
    if url.startswith("sqlite:"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, **kwargs)


def check_storage(config: ExperimentConfig) -> None:
    """The storage URL parses and a file storage's folder exists (or is the run folder, made later)."""
    url = storage_url(config)
    if _is_journal(url):
        file = Path(url.removeprefix("journal:"))
    else:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(url)
        except ArgumentError as err:
            raise ConfigError(f"search.storage: {url!r} is not a storage URL ({err})") from None
        if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
            return
        file = Path(parsed.database)
    folder = file.resolve().parent
    if not folder.is_dir() and folder != Path(config.run_dir).resolve():
        raise ConfigError(f"search.storage: folder {str(file.parent)!r} of {str(file)!r} does not exist")


# ---------------------------------------------------------------------- strategies
def check_external_options(config: ExperimentConfig, sc: StrategyConfig, where: str) -> None:
    """Options of a strategy outside ask/tell (see `EXTERNAL_STRATEGIES`); called by the config loader."""
    if sc.name != "proxyless":
        return
    from nas.proxyless import ProxylessError

    try:
        _proxyless_config(config, sc)
    except ProxylessError as err:
        raise ConfigError(f"{where}.options: {err}") from None


def _proxyless_config(config: ExperimentConfig, sc: StrategyConfig) -> Any:
    """The `ProxylessConfig` `nas.proxyless.search` will build from the experiment."""
    from nas.proxyless import ProxylessConfig

    lat = config.latency
    return ProxylessConfig.from_dict(sc.options, target_ms=lat.target_ms if lat.target_ms is not None
                                     else lat.budget_ms, n_derived=config.search.n_trials)


def check_strategy(config: ExperimentConfig, sc: StrategyConfig, space: SearchSpace,
                   sources: Sequence[LatencySource], objective: Objective) -> None:
    """Build strategy `sc` once for `space` (then discard it); an external one's needs are checked."""
    where = f"strategy {sc.key!r}"
    if sc.name == "proxyless":
        if not any(isinstance(s, TableLatency) for s in sources):
            raise ConfigError(f"{where}: 'proxyless' needs a latency table (latency.tables), not the MACs proxy")
        _dataset(_proxyless_config(config, sc).dataset, None, f"{where}: options.dataset")
        return
    if sc.name in EXTERNAL_STRATEGIES:
        return
    try:
        make_strategy(sc.name, space, sc.options, seed=config.seed, objective=objective,
                      latency_fn=sources[0].predict_many, max_tries=config.search.max_tries)
    except (HwnasError, TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None


# ---------------------------------------------------------------------- everything, before acting
@dataclass
class SearchSetup:
    """The checked parts of a search (`prepare_search`)."""

    config: ExperimentConfig
    space: SearchSpace
    sources: list[LatencySource]
    evaluator: EvaluatorBase
    budget_ms: float | None
    stand_ins: StandIns
    machine_warnings: list[str]
    """One line per latency table measured on another machine or runtime (`machine_warnings`)."""


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
    budget_ms = resolve_budget_ms(config, space, sources)
    objective = build_objective(config, sources, space)
    for sc in config.strategies:
        if not strategies or sc.key in strategies:
            check_strategy(config, sc, space, sources, objective)
    names = space.preset_names
    unknown = sorted(set(config.results.presets or []) - set(names) - set(space.preset_family_names))
    if unknown:
        raise ConfigError(f"results.presets: unknown preset(s) {unknown} of space {space.name!r}; presets: "
                          f"{[*names, *space.preset_family_names]}")
    if Path(config.run_dir).exists() and not Path(config.run_dir).is_dir():
        raise ConfigError(f"run_dir: {config.run_dir!r} exists and is not a folder")
    check_storage(config)
    evaluator = build_evaluator(config, space, sources)
    return SearchSetup(config, space, sources, evaluator, budget_ms, StandIns.of(config), machine_warnings(sources))
