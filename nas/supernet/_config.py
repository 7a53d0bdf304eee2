"""Supernet training configs: the YAML schema, `TrainConfig` / `Phase`, and the spaces they imply.

Every key is checked against `_SCHEMA` (unknown keys, wrong types and missing required keys are
errors naming the key); `TrainConfig.comparable()` is what a resumed run must share with its
checkpoint (everything but ``output_dir``).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from nas._space import SearchSpace, load_space
from nas.supernet._ops import SupernetError
from nas.supernet._supernet import ELASTIC

ELASTIC_DIMS = (*ELASTIC, "resolution")


class ConfigError(SupernetError):
    """A supernet training config is invalid; the message names the key."""


_REQUIRED = object()
_SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], Any]]] = {
    "": {"seed": ((int,), 0), "output_dir": ((str,), _REQUIRED), "space": ((dict,), _REQUIRED),
         "data": ((dict,), _REQUIRED), "optimizer": ((dict,), {}), "sandwich": ((dict,), {}),
         "eval": ((dict,), {}), "phases": ((list,), _REQUIRED), "checkpoint_every_steps": ((int,), 100),
         "dropout": ((float,), 0.0), "channels_last": ((bool,), True)},
    "data": {"dataset": ((str,), _REQUIRED), "root": ((str, type(None)), None), "val_fraction": ((float,), 0.1),
             "batch_size": ((int,), 128), "augment": ((bool,), True), "hflip": ((bool,), True),
             "crop_padding": ((int,), 4),
             "limit": ((int, type(None)), None)},
    "optimizer": {"name": ((str,), "sgd"), "momentum": ((float,), 0.9), "nesterov": ((bool,), True),
                  "weight_decay": ((float,), 3e-5), "label_smoothing": ((float,), 0.1),
                  "grad_clip": ((float, type(None)), None)},
    "sandwich": {"num_random": ((int,), 2), "kd_weight": ((float,), 1.0), "kd_temperature": ((float,), 1.0)},
    "eval": {"bn_batches": ((int,), 8), "batch_size": ((int,), 500), "limit": ((int, type(None)), None)},
    "phase": {"name": ((str,), _REQUIRED), "steps": ((int,), _REQUIRED), "lr": ((float,), _REQUIRED),
              "elastic": ((list,), []), "warmup_steps": ((int,), 0),
              "num_random": ((int, type(None)), None), "reorganize_channels": ((bool,), False)},
}


def _section(raw: Any, schema: str, where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    spec = _SCHEMA[schema]
    unknown = sorted(set(raw) - set(spec))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(spec)}")
    out: dict[str, Any] = {}
    for key, (types, default) in spec.items():
        if key not in raw:
            if default is _REQUIRED:
                raise ConfigError(f"{where}: missing key {key!r}")
            out[key] = copy.deepcopy(default)
            continue
        value = raw[key]
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ConfigError(f"{where}: {key} must be {names}, got {value!r}")
        out[key] = value
    return out


@dataclass(frozen=True)
class Phase:
    """One progressive-shrinking phase: which dimensions are elastic, for how many steps, at what lr."""

    name: str
    steps: int
    lr: float
    elastic: tuple[str, ...] = ()
    warmup_steps: int = 0
    num_random: int | None = None
    """Random subnets per step besides the largest and smallest (None: the config's sandwich.num_random)."""
    reorganize_channels: bool = False
    """Sort expanded channels by importance when the phase starts (OFA does before elastic expand)."""


@dataclass(frozen=True)
class TrainConfig:
    """A validated supernet training config (`from_file` / `from_dict`); `raw` is the plain dict."""

    raw: dict[str, Any] = field(repr=False)
    seed: int
    output_dir: Path
    space: dict[str, Any]
    data: dict[str, Any]
    optimizer: dict[str, Any]
    sandwich: dict[str, Any]
    eval: dict[str, Any]
    phases: tuple[Phase, ...]
    checkpoint_every_steps: int
    dropout: float
    channels_last: bool

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "TrainConfig":
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file {str(file)!r} does not exist")
        try:
            raw = yaml.safe_load(file.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"{file}: malformed YAML ({err})") from None
        return cls.from_dict(raw, str(file))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "config") -> "TrainConfig":
        top = _section(raw, "", source)
        sections = {name: _section(top[name], name, f"{source}: {name}")
                    for name in ("data", "optimizer", "sandwich", "eval")}
        space = dict(top["space"])
        if "name" not in space:
            raise ConfigError(f"{source}: space: missing key 'name' (a built-in space or a YAML path)")
        if not top["phases"]:
            raise ConfigError(f"{source}: phases: give at least one phase")
        phases = []
        for i, raw_phase in enumerate(top["phases"]):
            p = _section(raw_phase, "phase", f"{source}: phases[{i}]")
            bad = sorted(set(p["elastic"]) - set(ELASTIC_DIMS))
            if bad:
                raise ConfigError(f"{source}: phases[{i}] ({p['name']}): elastic {bad} not among {list(ELASTIC_DIMS)}")
            if p["steps"] < 1 or p["lr"] <= 0 or p["warmup_steps"] < 0:
                raise ConfigError(f"{source}: phases[{i}] ({p['name']}): steps must be >= 1, lr > 0, warmup >= 0")
            if p["num_random"] is not None and p["num_random"] < 0:
                raise ConfigError(f"{source}: phases[{i}] ({p['name']}): num_random must be >= 0")
            phases.append(Phase(p["name"], p["steps"], p["lr"], tuple(p["elastic"]), p["warmup_steps"],
                                p["num_random"], p["reorganize_channels"]))
        opt = sections["optimizer"]
        if opt["name"] not in ("sgd", "adamw"):
            raise ConfigError(f"{source}: optimizer: name {opt['name']!r} is not 'sgd' or 'adamw'")
        for where, key, value in (("data", "batch_size", sections["data"]["batch_size"]),
                                  ("eval", "batch_size", sections["eval"]["batch_size"]),
                                  ("eval", "bn_batches", sections["eval"]["bn_batches"]),
                                  ("", "checkpoint_every_steps", top["checkpoint_every_steps"])):
            if value < 1:
                raise ConfigError(f"{source}: {where + ': ' if where else ''}{key} must be >= 1, got {value}")
        for where in ("data", "eval"):  # null: every image
            if sections[where]["limit"] is not None and sections[where]["limit"] < 1:
                raise ConfigError(f"{source}: {where}: limit must be >= 1 or null, got {sections[where]['limit']}")
        if sections["sandwich"]["num_random"] < 0 or sections["sandwich"]["kd_temperature"] <= 0:
            raise ConfigError(f"{source}: sandwich: num_random must be >= 0 and kd_temperature > 0")
        return cls(copy.deepcopy(raw), top["seed"], Path(top["output_dir"]), space, sections["data"], opt,
                   sections["sandwich"], sections["eval"], tuple(phases), top["checkpoint_every_steps"],
                   top["dropout"], top["channels_last"])

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.phases)

    def comparable(self) -> dict[str, Any]:
        """The parts of the config a resumed run must share with the checkpoint."""
        return {k: v for k, v in self.raw.items() if k != "output_dir"}


def build_space(config: TrainConfig, num_classes: int, in_channels: int) -> SearchSpace:
    """The space of the config, sized for the dataset's classes and channels."""
    params = {k: v for k, v in config.space.items() if k != "name"}
    for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if params.get(key, value) != value:
            raise ConfigError(f"space: {key}={params[key]} but the dataset has {value}")
        params[key] = value
    try:
        return load_space(config.space["name"], **params)
    except TypeError as err:
        raise ConfigError(f"space: {err}") from None


def phase_space(space: SearchSpace, phase: Phase) -> SearchSpace:
    """`space` restricted to its largest option in every dimension `phase` does not make elastic."""
    fixed: dict[str, list[Any]] = {}
    for name, options in space.dims.items():
        attr = name.rsplit(".", 1)[-1]
        if attr not in phase.elastic:
            fixed.setdefault(attr, []).append(max(options))
    return space.restrict(**{attr: [max(values)] for attr, values in fixed.items()})


__all__ = ["ELASTIC_DIMS", "ConfigError", "Phase", "TrainConfig", "build_space", "phase_space"]
