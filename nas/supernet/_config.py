"""Supernet training configs: the YAML sections, `TrainConfig` / `Phase`, and the spaces they imply.

Every key is checked by `nas._config.load` against the section dataclasses (unknown keys, wrong
types and missing required keys are errors naming the key); `TrainConfig.comparable()` is what a
resumed run must share with its checkpoint (everything but ``output_dir``).
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field
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
    """Its name in logs and the history."""
    steps: int
    """Training steps of the phase."""
    lr: float
    """Peak learning rate (cosine decay to zero over the phase)."""
    elastic: tuple[str, ...] = ()
    """Dimensions sampled in this phase: kernel, expand, depth, resolution (the others at their largest)."""
    warmup_steps: int = 0
    """Steps of linear learning-rate warm-up at the start of the phase."""
    num_random: int | None = None
    """Random subnets per step besides the largest and smallest (None: the config's sandwich.num_random)."""
    reorganize_channels: bool = False
    """Sort expanded channels by importance when the phase starts (OFA does before elastic expand)."""


# a config file's keys and sections (`TrainConfig` keeps the sections as plain dicts); the attribute
# docstrings are the keys' descriptions in docs/config.md (`python -m nas.cli._configref`)
@dataclass
class _Data:
    dataset: str
    """A `nas.data.load_dataset` name (see `nas list datasets`) or a path; "folder": own images at data.root."""
    root: str | None = None
    """Directory the dataset is read from (default: its standard places and $HWNAS_DATA_DIR)."""
    val_fraction: float = 0.1
    """Share of the training images held out (seeded) as the validation split."""
    image_size: int | None = None
    """Own images ("folder") only: resize every image to this size (default: their own size)."""
    channels: int | None = None
    """Own images ("folder") only: read them as 1 (grayscale) or 3 (RGB) channels (default: inferred)."""
    batch_size: int = 128
    """Training batch size (all processes together under torchrun)."""
    augment: bool = True
    """Random crop (with crop_padding) and, with hflip, horizontal flips of the training images."""
    hflip: bool = True
    """With augment: random horizontal flips (false for digits)."""
    crop_padding: int = 4
    """With augment: zero padding in pixels around the random crop."""
    limit: int | None = None
    """Use only the first N images of each split (null: every image)."""


@dataclass
class _Optimizer:
    name: str = "sgd"
    """sgd | adamw."""
    momentum: float = 0.9
    """SGD momentum."""
    nesterov: bool = True
    """SGD: Nesterov momentum (when momentum > 0)."""
    weight_decay: float = 3e-5
    """Weight decay of the convolution and linear weights (none on biases, BN and kernel transforms)."""
    label_smoothing: float = 0.1
    """Label smoothing of the cross-entropy loss."""
    grad_clip: float | None = None
    """Clip the global gradient norm to this (null or 0: no clipping)."""


@dataclass
class _Sandwich:
    num_random: int = 2
    """Random subnets per step besides the largest and the smallest (a phase may override it)."""
    kd_weight: float = 1.0
    """Weight of the distillation loss towards the largest subnet's logits (0: labels only)."""
    kd_temperature: float = 1.0
    """Softmax temperature of the distillation loss."""


@dataclass
class _Eval:
    bn_batches: int = 8
    """Training batches that re-estimate batch-norm statistics before each subnet is evaluated."""
    batch_size: int = 500
    """Evaluation batch size."""
    limit: int | None = None
    """Evaluate on the first N validation images (null: all)."""


@dataclass
class _File:
    output_dir: str
    """Folder of checkpoint.pt and the history; a rerun with the same config resumes from it."""
    space: dict[str, Any]
    """The search space: name (built-in or YAML path) and its overrides (resolutions, width_mult, ...);
    num_classes and in_channels come from the dataset."""
    data: _Data
    """The dataset and how it is read and augmented."""
    phases: list[Phase]
    """Progressive-shrinking phases, in order (at least one)."""
    seed: int = 0
    """Seed of the weights, the data split and order, and the sampled subnets."""
    optimizer: _Optimizer = field(default_factory=_Optimizer)
    """The weights' optimizer (the learning rate is each phase's)."""
    sandwich: _Sandwich = field(default_factory=_Sandwich)
    """The sandwich rule with in-place distillation."""
    eval: _Eval = field(default_factory=_Eval)
    """Shared-weight evaluation of the largest and smallest subnets after each phase."""
    checkpoint_every_steps: int = 100
    """Write the checkpoint every this many steps (and at the end of each phase)."""
    dropout: float = 0.0
    """Dropout before the classifier."""
    channels_last: bool = True
    """Train in the channels_last memory format (3-5x faster depthwise convolutions on CPU)."""


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
