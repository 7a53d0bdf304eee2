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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from nas._config import ConfigError, Many, Section, load, read_yaml
from nas.proxyless import ProxylessError, ProxylessStrategy
from nas.strategies import GOALS, Objective, SearchError, make_config, strategy_names

DERIVING_STRATEGIES: dict[str, Any] = {"proxyless": ProxylessStrategy}
"""Strategies that run their own loop and derive archs at the end instead of ask/tell: name -> class
with ``check_options(options, where)`` (the config loader) and ``build(space, tables, objective, options,
*, seed, n_derived) -> DerivingStrategy`` (from the resolved objective, in `prepare_search`)."""


@dataclass
class SpaceConfig:
    name: str = "ofa_mbv3"
    """Built-in space name or YAML path."""
    resolutions: Many[int] | None = None
    """Input resolutions, replacing the space YAML's list (default: the YAML's)."""
    num_classes: int | None = None
    """Classes of the network head (default: the space YAML's)."""
    in_channels: int | None = None
    """Input channels (default: the space YAML's)."""
    width_mult: float | None = None
    """Channel width multiplier (default: the space YAML's)."""
    stem_stride: int | None = None
    """Stride of the stem convolution (default: the space YAML's)."""


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
    budget_ms: float | None = None
    """This device's hard latency budget (ms on this table). Two or more tables with a budget (or
    target) make a multi-device search, see latency.goal. On the first table it replaces latency.budget_ms."""
    budget_quantile: float | None = None
    """Instead of budget_ms: this device's budget at this quantile (0..1) of the same 1000 seeded random
    archs' latency on this table."""
    target_ms: float | None = None
    """This device's reward target T (default: its budget)."""
    dtype: str | None = None
    """float32 | int8: the dtype this search expects the table to be (default: the table's own); a table
    of another dtype is refused. Tables of different dtypes in one search must each say theirs."""

    @property
    def has_budget(self) -> bool:
        """The entry carries a budget or a target of its own."""
        return any(v is not None for v in (self.budget_ms, self.budget_quantile, self.target_ms))

    @property
    def is_proxy(self) -> bool:
        return self.path == MACS_PROXY

    @property
    def source_name(self) -> str:
        """The latency source's name in results (``latency_ms[<name>]``)."""
        return self.name or (MACS_PROXY if self.is_proxy else Path(self.path).name.split(".")[0])


@dataclass
class LatencyConfig:
    tables: Many[TableConfig] | None = None
    """One table per target device; the first is the primary (the budget below, the study's 2nd value).
    Each entry may carry its own budget_ms / budget_quantile / target_ms; with two or more such devices
    the search serves them all (see goal). Required: table CSVs, or ``[{path: macs-proxy}]`` to opt
    into the MACs stand-in."""
    goal: str | None = None
    """With a budget (or target) on two or more tables: joint (default) | per_device. joint: one arch
    that meets every device's budget (evolution/random: feasible = every budget met; nsga2: accuracy plus
    one latency objective per device; the reward ACC x prod_i (LAT_i/T_i)^w_i). per_device: the best arch
    per device from one shared history, each arch's accuracy evaluated once and scored for every device
    (candidates meeting at least one budget; evolution keeps an elite per device; the reward is the best
    device score); `nas results` picks per device the most accurate trial within that device's budget.
    ProxylessNAS takes one budgeted table per run."""
    budget_ms: float | None = None
    """Hard latency budget on the primary (first) table: candidates over it are rejected before evaluation.
    Same as latency.tables.0.budget_ms."""
    target_ms: float | None = None
    """The reward's latency target T (default: budget_ms). With no budget, a soft target only."""
    budget_quantile: float | None = None
    """Instead of budget_ms: the budget at this quantile (0..1) of 1000 seeded random archs' latency
    on the primary table, e.g. 0.3 = faster than 70% of the space on *your* device."""
    reward: str = "soft"
    """accuracy | soft | hard | custom (MnasNet reward, see nas.strategies.Objective)."""
    alpha: float | None = None
    """reward custom: the exponent w at or under the target (ACC x (LAT/T)^w)."""
    beta: float | None = None
    """reward custom: the exponent w over the target."""


@dataclass
class StrategyConfig:
    name: str = "evolution"
    """random | evolution | aging | rl | tpe | nsga2 | proxyless (`nas list strategies`)."""
    label: str | None = None
    """Name of its study and in plots (default: name)."""
    options: dict[str, Any] = field(default_factory=dict)
    """The strategy's options (see "Strategy options" below)."""

    @property
    def key(self) -> str:
        return self.label or self.name


@dataclass
class EvaluatorConfig:
    name: str | None = None
    """Required: predictor | supernet | train, or synthetic (opts into the synthetic stand-in)."""
    options: dict[str, Any] = field(default_factory=dict)
    """The evaluator's options (see "Evaluator options" below)."""


@dataclass
class SearchConfig:
    n_trials: int = 100
    """Completed trials per strategy (all workers together)."""
    storage: str | None = None
    """Optuna storage URL; default sqlite:///RUN/study.db. A path ending in .log / .journal is a journal file."""
    max_tries: int = 50
    """Rounds of resampling before a budget is declared infeasible."""
    progress: bool = True
    """Show a progress bar (`nas search --quiet` turns it off)."""
    seeds: int = 1
    """Runs of every strategy, each with its own seed (studies NAME.LABEL, NAME.LABEL@2, ...): results report hypervolume as mean ± std over them, each seed paired with random search's. A deriving strategy (proxyless) runs once."""


@dataclass
class ResultsConfig:
    budgets_ms: Many[float] = field(default_factory=list)
    """Budgets to report the best arch under (default: the search budget)."""
    presets: Many[str] | None = None
    """Reference archs in the plot (default: every preset of the space)."""


@dataclass
class ExperimentConfig:
    name: str = "search"
    """Name of the experiment: its studies are NAME.LABEL; the plot's title."""
    run_dir: str = "runs/search"
    """Run folder: trials, study database, results; rerun to resume, start N processes to share it."""
    seed: int = 0
    """Seed of the strategies, of the synthetic and train evaluators and of budget_quantile's sample."""
    space: Section[SpaceConfig] = field(default_factory=SpaceConfig)
    """The search space and its shape."""
    latency: Section[LatencyConfig] = field(default_factory=LatencyConfig)
    """Where latency comes from, the budget and the reward."""
    strategies: Many[StrategyConfig] = field(default_factory=lambda: [StrategyConfig()])
    """One or more strategies, each its own study (or `strategy:` for one)."""
    evaluator: Section[EvaluatorConfig] = field(default_factory=EvaluatorConfig)
    """Where accuracy comes from."""
    search: Section[SearchConfig] = field(default_factory=SearchConfig)
    """Trials, storage and sampling limits."""
    results: Section[ResultsConfig] = field(default_factory=ResultsConfig)
    """What `nas results` reports."""

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
    config = load(ExperimentConfig, raw)
    _check_sources(config)
    _check_numbers(config)
    _check_devices(config)
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
        if t.dtype is not None:
            from nas.export import DTYPES

            if t.dtype not in DTYPES:
                raise ConfigError(f"latency.tables.{i}.dtype: unknown dtype {t.dtype!r}; use one of {list(DTYPES)}")
            if t.is_proxy:
                raise ConfigError(f"latency.tables.{i}.dtype: {MACS_PROXY!r} has no dtype (it is MACs, not a table)")
    names = [t.source_name for t in tables]
    if len(set(names)) != len(names):
        raise ConfigError(f"latency.tables need distinct names (set latency.tables.N.name), got {names}")
    if config.evaluator.name is None:
        raise ConfigError(f"evaluator.name is missing: choose one of {', '.join(EVALUATORS[1:])}, or opt into "
                          f"the synthetic stand-in (no training) explicitly with evaluator: {{name: {SYNTHETIC}}}")
    if config.evaluator.name not in EVALUATORS:
        raise ConfigError(f"evaluator.name: unknown evaluator {config.evaluator.name!r}; "
                          f"evaluators: {', '.join(EVALUATORS)}")


def budgeted_tables(config: ExperimentConfig) -> list[int]:
    """Indices of the tables that carry a budget or target (the first also through latency.budget_ms,
    budget_quantile or target_ms): two or more make a multi-device search."""
    lat = config.latency
    top = any(v is not None for v in (lat.budget_ms, lat.budget_quantile, lat.target_ms))
    return [i for i, t in enumerate(lat.tables or []) if t.has_budget or (i == 0 and top)]


def _check_devices(config: ExperimentConfig) -> None:
    """Per-table budgets and latency.goal, each error naming the table entry at fault."""
    lat = config.latency
    for i, t in enumerate(lat.tables or []):
        where = f"latency.tables.{i} ({t.source_name})"
        if t.budget_ms is not None and t.budget_quantile is not None:
            raise ConfigError(f"{where}: give budget_ms or budget_quantile, not both")
        if t.budget_quantile is not None and not 0 < t.budget_quantile < 1:
            raise ConfigError(f"{where}.budget_quantile must be in (0, 1), got {t.budget_quantile}")
        for key in ("budget_ms", "target_ms"):
            value = getattr(t, key)
            if value is not None and not value > 0:
                raise ConfigError(f"{where}.{key} must be positive, got {value}")
        if i == 0 and t.has_budget:
            clash = [k for k in ("budget_ms", "budget_quantile", "target_ms") if getattr(lat, k) is not None]
            if clash:
                raise ConfigError(f"{where} carries its own budget: drop latency.{clash[0]} (it sets the same "
                                  "table's budget)")
    budgeted = budgeted_tables(config)
    n = len(budgeted)
    if len(budgeted) == 1 and budgeted[0] != 0:
        raise ConfigError(f"latency.tables.{budgeted[0]}: the only table with a budget must be the first (the "
                          "primary); move it first, or give budgets on two or more tables for a multi-device search")
    if lat.goal is not None:
        if lat.goal not in GOALS:
            raise ConfigError(f"latency.goal: {lat.goal!r} is not one of {', '.join(GOALS)}")
        if n < 2:
            raise ConfigError(f"latency.goal {lat.goal!r} needs a budget (or target) on two or more of "
                              f"latency.tables; {n} carry one")
    if n >= 2:
        for i, sc in enumerate(config.strategies):
            if sc.name in DERIVING_STRATEGIES:
                raise ConfigError(f"strategies.{i}.name: {sc.name} takes one budgeted latency table per run; "
                                  f"{n} of latency.tables carry a budget (run one search per table)")


def _check_numbers(config: ExperimentConfig) -> None:
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
    for key, value in (("search.n_trials", search.n_trials), ("search.max_tries", search.max_tries),
                       ("search.seeds", search.seeds)):
        if value < 1:
            raise ConfigError(f"{key} must be >= 1, got {value}")
    bad = [b for b in config.results.budgets_ms if not b > 0]
    if bad:
        raise ConfigError(f"results.budgets_ms must be positive, got {bad}")


def _check_strategies(config: ExperimentConfig, single: bool) -> None:
    """Strategy names, labels and options (their values too), each error naming its key."""
    keys = [s.key for s in config.strategies]
    if not keys:
        raise ConfigError("strategies is empty: give at least one strategy")
    if len(set(keys)) != len(keys):
        raise ConfigError(f"strategies need distinct labels, got {keys}")
    names = [*strategy_names(), *DERIVING_STRATEGIES]
    for i, sc in enumerate(config.strategies):
        where = "strategy" if single else f"strategies.{i}"
        if sc.name not in names:
            raise ConfigError(f"{where}.name: unknown strategy {sc.name!r}; strategies: {', '.join(names)}")
        check_options(config, sc, f"{where}.options")


def check_options(config: ExperimentConfig, sc: StrategyConfig, where: str) -> None:
    """The options of strategy `sc` (at key path `where`): an ask/tell strategy's config
    (`nas.strategies.make_config`) or a deriving strategy's (`DERIVING_STRATEGIES`)."""
    try:
        if sc.name in DERIVING_STRATEGIES:
            DERIVING_STRATEGIES[sc.name].check_options(sc.options, where)
        else:
            make_config(sc.name, sc.options, where)
    except (SearchError, ProxylessError) as err:  # a value check of the config's __post_init__
        raise ConfigError(f"{where}: {err}") from None


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read an experiment YAML file and apply ``--set`` overrides."""
    raw = read_yaml(path)
    if not isinstance(raw or {}, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return config_from_dict(raw or {}, overrides)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
