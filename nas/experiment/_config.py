"""Experiment configs: dataclasses loaded from YAML; unknown keys are errors naming the key.

``--set key=value`` overrides use dotted paths (``search.n_trials=50``,
``strategies.0.options.population=20``); values are parsed as YAML scalars/lists.

A config must say where latency and accuracy come from: ``latency.tables`` and ``evaluator.name``
have no defaults. The stand-ins are explicit choices: ``latency: {tables: [{path: macs-proxy}]}``
(MACs scaled by an assumed throughput) and ``evaluator: {name: synthetic}`` (a seeded function
of the arch). Everything checkable without files (strategy names and options, budgets, rewards)
is checked here; `nas.experiment.prepare_search` checks the files and builds the parts.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from nas._errors import HwnasError


class ConfigError(HwnasError):
    """A bad experiment config file, key or value."""


@dataclass
class SpaceConfig:
    name: str = "ofa_mbv3"
    """Built-in space name or YAML path."""
    resolutions: list[int] | None = None
    num_classes: int | None = None
    in_channels: int | None = None
    width_mult: float | None = None
    stem_stride: int | None = None


MACS_PROXY = "macs-proxy"
"""The `TableConfig.path` that opts into the MACs stand-in for latency."""
SYNTHETIC = "synthetic"
"""The `EvaluatorConfig.name` that opts into the synthetic stand-in for accuracy."""
EVALUATORS = (SYNTHETIC, "predictor", "supernet", "train")


@dataclass
class TableConfig:
    path: str = ""
    """A latency table CSV (with its JSON sidecar), or "macs-proxy" for the MACs stand-in."""
    name: str | None = None
    """Name in results (default: the file name without extension)."""
    gmacs_per_s: float = 1.0
    """Only for "macs-proxy": assumed throughput."""

    @property
    def is_proxy(self) -> bool:
        return self.path == MACS_PROXY

    @property
    def source_name(self) -> str:
        """The latency source's name in results (``latency_ms[<name>]``)."""
        return self.name or (MACS_PROXY if self.is_proxy else Path(self.path).name.split(".")[0])


@dataclass
class LatencyConfig:
    tables: list[TableConfig] | None = None
    """One table per target device; the first is the primary (budget, reward, 2nd objective).
    Required: table CSVs, or ``[{path: macs-proxy}]`` to opt into the MACs stand-in."""
    budget_ms: float | None = None
    """Hard latency budget on the primary table: candidates over it are rejected before evaluation."""
    target_ms: float | None = None
    """The reward's latency target T (default: budget_ms). With no budget, a soft target only."""
    budget_quantile: float | None = None
    """Instead of budget_ms: the budget at this quantile (0..1) of 1000 seeded random archs' latency
    on the primary table, e.g. 0.3 = faster than 70% of the space on *your* device."""
    reward: str = "soft"
    """accuracy | soft | hard | custom (MnasNet reward, see nas.strategies.Objective)."""
    alpha: float | None = None
    beta: float | None = None


@dataclass
class StrategyConfig:
    name: str = "evolution"
    """random | evolution | aging | rl | tpe | nsga2"""
    label: str | None = None
    """Name of its study and in plots (default: name)."""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.label or self.name


@dataclass
class EvaluatorConfig:
    name: str | None = None
    """Required: predictor | supernet | train, or synthetic (opts into the synthetic stand-in)."""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchConfig:
    n_trials: int = 100
    """Completed trials per strategy (all workers together)."""
    storage: str | None = None
    """Optuna storage URL; default sqlite:///RUN/study.db. A path ending in .log / .journal is a journal file."""
    max_tries: int = 50
    """Rounds of resampling before a budget is declared infeasible."""
    progress: bool = True


@dataclass
class ResultsConfig:
    budgets_ms: list[float] = field(default_factory=list)
    """Budgets to report the best arch under (default: the search budget)."""
    presets: list[str] | None = None
    """Reference archs in the plot (default: every preset of the space)."""


@dataclass
class ExperimentConfig:
    name: str = "search"
    run_dir: str = "runs/search"
    seed: int = 0
    space: SpaceConfig = field(default_factory=SpaceConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    strategies: list[StrategyConfig] = field(default_factory=lambda: [StrategyConfig()])
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    results: ResultsConfig = field(default_factory=ResultsConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def strategy(self, key: str) -> StrategyConfig:
        for s in self.strategies:
            if s.key == key:
                return s
        raise ConfigError(f"no strategy {key!r} in this experiment; strategies: {[s.key for s in self.strategies]}")


# ---------------------------------------------------------------------- loading
def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        path = ", ".join(f"{where}.{k}" if where else str(k) for k in unknown)
        raise ConfigError(f"unknown config key(s) {path}; allowed at {where or 'top level'}: {sorted(names)}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}" if where else k) for k, v in raw.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where or 'config'}: {err}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, where)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            value = [value]
        return [_convert(args[0], v, f"{where}.{i}") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a raw config mapping."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        parts = key.strip().split(".")
        node: Any = raw
        for i, part in enumerate(parts[:-1]):
            nxt = parts[i + 1]
            if isinstance(node, list):
                node = node[_list_index(node, part, key)]
                continue
            if part not in node or node[part] is None:
                node[part] = [] if nxt.isdigit() else {}
            node = node[part]
        last = parts[-1]
        if isinstance(node, list):
            node[_list_index(node, last, key)] = value
        else:
            node[last] = value
    return raw


def _list_index(node: list, part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--set {key}: {part!r} is not an index of a list of {len(node)}")
    return int(part)


def config_from_dict(raw: Mapping[str, Any], overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Build and check a config (see the module docstring for what is checked here)."""
    raw = dict(raw)
    single = "strategy" in raw
    if single:  # a single strategy, for convenience
        if "strategies" in raw:
            raise ConfigError("give either 'strategy' (one) or 'strategies' (a list), not both")
        raw["strategies"] = [raw.pop("strategy")]
    raw = apply_overrides(raw, [o.replace("strategy.", "strategies.0.", 1) if o.startswith("strategy.") else o
                                for o in overrides])
    config = _build(ExperimentConfig, raw, "")
    _check_sources(config)
    _check_numbers(config)
    _check_strategies(config, single)
    return config


def _check_sources(config: ExperimentConfig) -> None:
    """Latency and accuracy must be chosen: a missing key is an error naming the choices."""
    tables = config.latency.tables
    if tables is None:
        raise ConfigError("latency.tables is missing: give one latency table per device, e.g. "
                          "latency: {tables: [{path: latency_tables/<table>.csv}]} (build one with `nas latency "
                          f"build`), or opt into the MACs stand-in explicitly with {{path: {MACS_PROXY}}}")
    if not tables:
        raise ConfigError(f"latency.tables is empty: give a table path (or {MACS_PROXY!r} for the MACs stand-in)")
    for i, t in enumerate(tables):
        if not t.path:
            raise ConfigError(f"latency.tables.{i}.path is missing: a table CSV or {MACS_PROXY!r}")
        if t.is_proxy and not t.gmacs_per_s > 0:
            raise ConfigError(f"latency.tables.{i}.gmacs_per_s must be positive, got {t.gmacs_per_s}")
    names = [t.source_name for t in tables]
    if len(set(names)) != len(names):
        raise ConfigError(f"latency.tables need distinct names (set latency.tables.N.name), got {names}")
    if config.evaluator.name is None:
        raise ConfigError(f"evaluator.name is missing: choose one of {', '.join(EVALUATORS[1:])}, or opt into "
                          f"the synthetic stand-in (no training) explicitly with evaluator: {{name: {SYNTHETIC}}}")
    if config.evaluator.name not in EVALUATORS:
        raise ConfigError(f"evaluator.name: unknown evaluator {config.evaluator.name!r}; "
                          f"evaluators: {', '.join(EVALUATORS)}")


def _check_numbers(config: ExperimentConfig) -> None:
    from nas.strategies import Objective, SearchError

    lat, search = config.latency, config.search
    if lat.budget_quantile is not None:
        if lat.budget_ms is not None:
            raise ConfigError("give latency.budget_ms or latency.budget_quantile, not both")
        if not 0 < lat.budget_quantile < 1:
            raise ConfigError(f"latency.budget_quantile must be in (0, 1), got {lat.budget_quantile}")
    try:
        Objective(target_ms=lat.target_ms, budget_ms=lat.budget_ms, reward=lat.reward, alpha=lat.alpha, beta=lat.beta)
    except SearchError as err:
        raise ConfigError(f"latency: {err}") from None
    for key, value in (("search.n_trials", search.n_trials), ("search.max_tries", search.max_tries)):
        if value < 1:
            raise ConfigError(f"{key} must be >= 1, got {value}")
    bad = [b for b in config.results.budgets_ms if not b > 0]
    if bad:
        raise ConfigError(f"results.budgets_ms must be positive, got {bad}")


def _check_strategies(config: ExperimentConfig, single: bool) -> None:
    """Strategy names, labels and options (their values too), each error naming its key."""
    from nas.experiment._build import EXTERNAL_STRATEGIES, check_external_options
    from nas.strategies import SearchError, make_config, strategy_names

    keys = [s.key for s in config.strategies]
    if not keys:
        raise ConfigError("strategies is empty: give at least one strategy")
    if len(set(keys)) != len(keys):
        raise ConfigError(f"strategies need distinct labels, got {keys}")
    for i, sc in enumerate(config.strategies):
        where = "strategy" if single else f"strategies.{i}"
        if sc.name in EXTERNAL_STRATEGIES:
            check_external_options(config, sc, where)
            continue
        if sc.name not in strategy_names():
            raise ConfigError(f"{where}.name: unknown strategy {sc.name!r}; strategies: "
                              f"{', '.join([*strategy_names(), *EXTERNAL_STRATEGIES])}")
        try:
            make_config(sc.name, sc.options)
        except SearchError as err:
            raise ConfigError(f"{where}.options: {err}") from None


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read an experiment YAML file and apply ``--set`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: malformed YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return config_from_dict(raw, overrides)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
