"""Experiment configs: dataclasses loaded from YAML; unknown keys are errors naming the key.

``--set key=value`` overrides use dotted paths (``search.n_trials=50``,
``strategies.0.options.population=20``); values are parsed as YAML scalars/lists.
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


@dataclass
class TableConfig:
    path: str = ""
    """A latency table CSV (with its JSON sidecar), or "macs-proxy" for the MACs stand-in."""
    name: str | None = None
    """Name in results (default: the file name without extension)."""
    gmacs_per_s: float = 1.0
    """Only for "macs-proxy": assumed throughput."""


@dataclass
class LatencyConfig:
    tables: list[TableConfig] = field(default_factory=lambda: [TableConfig(path="macs-proxy")])
    """One table per target device; the first is the primary (budget, reward, 2nd objective)."""
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
    name: str = "synthetic"
    """synthetic | predictor | supernet | train"""
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
    raw = dict(raw)
    if "strategy" in raw:  # a single strategy, for convenience
        if "strategies" in raw:
            raise ConfigError("give either 'strategy' (one) or 'strategies' (a list), not both")
        raw["strategies"] = [raw.pop("strategy")]
    raw = apply_overrides(raw, [o.replace("strategy.", "strategies.0.", 1) if o.startswith("strategy.") else o
                                for o in overrides])
    config = _build(ExperimentConfig, raw, "")
    keys = [s.key for s in config.strategies]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"strategies need distinct labels, got {keys}")
    if config.search.n_trials < 1:
        raise ConfigError(f"search.n_trials must be >= 1, got {config.search.n_trials}")
    return config


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
