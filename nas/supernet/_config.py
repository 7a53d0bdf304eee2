"""Supernet training configs: the YAML sections, `TrainConfig` / `Phase`, and the spaces they imply.

Every key is checked by `nas._config.load` against the section dataclasses (unknown keys, wrong
types and missing required keys are errors naming the key); `TrainConfig.comparable()` is what a
resumed run must share with its checkpoint (everything but ``output_dir``).
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field, make_dataclass
from pathlib import Path
from typing import Any

from nas._config import ConfigError, load, read_yaml
from nas._space import SearchSpace, load_space
from nas.supernet._supernet import ELASTIC

ELASTIC_DIMS = (*ELASTIC, "resolution")


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


# a config file's keys and sections (`TrainConfig` keeps the sections as plain dicts): (key, type, default)
# data.dataset: a `nas.data.load_dataset` name or path ("folder": own images at data.root, read at
# data.image_size (default: their own size) as data.channels 1 or 3 (default: inferred))
_Data = make_dataclass("_Data", [("dataset", str), ("root", str | None, None), ("val_fraction", float, 0.1),
                                 ("image_size", int | None, None), ("channels", int | None, None),
                                 ("batch_size", int, 128), ("augment", bool, True), ("hflip", bool, True),
                                 ("crop_padding", int, 4), ("limit", int | None, None)])
_Optimizer = make_dataclass("_Optimizer", [
    ("name", str, "sgd"), ("momentum", float, 0.9), ("nesterov", bool, True), ("weight_decay", float, 3e-5),
    ("label_smoothing", float, 0.1), ("grad_clip", float | None, None)])
_Sandwich = make_dataclass("_Sandwich", [("num_random", int, 2), ("kd_weight", float, 1.0),
                                         ("kd_temperature", float, 1.0)])
_Eval = make_dataclass("_Eval", [("bn_batches", int, 8), ("batch_size", int, 500), ("limit", int | None, None)])


_File = make_dataclass("_File", [
    ("output_dir", str), ("space", dict[str, Any]), ("data", _Data), ("phases", list[Phase]), ("seed", int, 0),
    *((name, sec, field(default_factory=sec)) for name, sec in (("optimizer", _Optimizer), ("sandwich", _Sandwich),
                                                                ("eval", _Eval))),
    ("checkpoint_every_steps", int, 100), ("dropout", float, 0.0), ("channels_last", bool, True)])


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
        return cls.from_dict(read_yaml(path), str(path))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "config") -> "TrainConfig":
        try:
            top = load(_File, raw)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
        if "name" not in top.space:
            raise ConfigError(f"{source}: space: missing key 'name' (a built-in space or a YAML path)")
        if not top.phases:
            raise ConfigError(f"{source}: phases: give at least one phase")
        for i, p in enumerate(top.phases):
            bad = sorted(set(p.elastic) - set(ELASTIC_DIMS))
            if bad:
                raise ConfigError(f"{source}: phases.{i} ({p.name}): elastic {bad} not among {list(ELASTIC_DIMS)}")
            if p.steps < 1 or p.lr <= 0 or p.warmup_steps < 0:
                raise ConfigError(f"{source}: phases.{i} ({p.name}): steps must be >= 1, lr > 0, warmup >= 0")
            if p.num_random is not None and p.num_random < 0:
                raise ConfigError(f"{source}: phases.{i} ({p.name}): num_random must be >= 0")
        if top.optimizer.name not in ("sgd", "adamw"):
            raise ConfigError(f"{source}: optimizer.name: {top.optimizer.name!r} is not 'sgd' or 'adamw'")
        for key, value in (("data.batch_size", top.data.batch_size), ("eval.batch_size", top.eval.batch_size),
                           ("eval.bn_batches", top.eval.bn_batches),
                           ("checkpoint_every_steps", top.checkpoint_every_steps)):
            if value < 1:
                raise ConfigError(f"{source}: {key} must be >= 1, got {value}")
        for key, limit in (("data.limit", top.data.limit), ("eval.limit", top.eval.limit)):  # null: every image
            if limit is not None and limit < 1:
                raise ConfigError(f"{source}: {key} must be >= 1 or null, got {limit}")
        if top.sandwich.num_random < 0 or top.sandwich.kd_temperature <= 0:
            raise ConfigError(f"{source}: sandwich: num_random must be >= 0 and kd_temperature > 0")
        return cls(copy.deepcopy(raw), top.seed, Path(top.output_dir), dict(top.space), asdict(top.data),
                   asdict(top.optimizer), asdict(top.sandwich), asdict(top.eval), tuple(top.phases),
                   top.checkpoint_every_steps, top.dropout, top.channels_last)

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
