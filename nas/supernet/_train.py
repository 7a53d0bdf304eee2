"""Progressive-shrinking supernet training: sandwich rule, in-place distillation, resumable.

A run is a YAML config (see ``experiments/supernet_fmnist.yaml``) and an output directory. Phases
widen the sampled space one elastic dimension at a time (full → kernel → depth → expand →
resolution); each phase space is ``space.restrict(...)`` with the non-elastic choices at their
maximum. Every step trains the phase's largest subnet on the labels, then its smallest and
``num_random`` random subnets on the labels plus a distillation loss towards the largest one's
logits, accumulating gradients before one optimizer step.

Checkpoints (``checkpoint.pt``) are written atomically and hold everything a resume needs: weights,
optimizer, phase, step, the RNG states of the subnet sampler and of the data order. A rerun of
the same config resumes from it; a checkpoint that cannot be read is an error, never a restart.
Under ``torchrun`` (``WORLD_SIZE`` > 1) each process takes its share of every batch, all sample the
same subnets, and gradients are averaged with ``torch.distributed`` (gloo on CPU).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from nas._atomic import atomic_write
from nas.supernet._checkpoint import (FORMAT, CheckpointError, load_checkpoint, load_resumable, save_checkpoint,
                                      supernet_from_checkpoint)
from nas.supernet._config import ELASTIC_DIMS, ConfigError, Phase, TrainConfig, build_space, phase_space
from nas.supernet._evaluate import SharedWeightEvaluator
from nas.supernet._step import (broadcast_state, init_distributed, kd_loss, lr_at, optimizer_step, sandwich,
                                sandwich_backward)
from nas.supernet._supernet import Supernet, largest_arch, smallest_arch
from nas.supernet._threads import ThreadGovernor, threading_summary, threads_were_chosen

CHECKPOINT_NAME = "checkpoint.pt"


# ---------------------------------------------------------------------- training
@dataclass
class TrainResult:
    """What `train_supernet` leaves: the supernet, where it stopped and the evaluations so far."""

    supernet: Supernet
    step: int
    total_steps: int
    history: list[dict[str, Any]]
    checkpoint: Path

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps


def _param_groups(supernet: Supernet, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in supernet.named_parameters():
        (decay if p.ndim > 1 and "kernel_transforms" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _make_optimizer(supernet: Supernet, cfg: dict[str, Any], lr: float) -> torch.optim.Optimizer:
    groups = _param_groups(supernet, cfg["weight_decay"])
    if cfg["name"] == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=cfg["momentum"], nesterov=cfg["nesterov"] and cfg["momentum"] > 0)


def _load_splits(config: TrainConfig) -> Any:
    from nas.data import DatasetError, load_dataset

    d = config.data
    try:
        return load_dataset(d["dataset"], d["root"], val_fraction=d["val_fraction"], seed=config.seed,
                            image_size=d["image_size"], channels=d["channels"])
    except (DatasetError, ValueError) as err:
        raise ConfigError(f"data: {err}") from None


def _make_loaders(config: TrainConfig, splits: Any, resolution: int) -> Any:
    from nas.data import make_loaders

    d = config.data
    loaders = make_loaders(splits, d["batch_size"], eval_batch_size=config.eval["batch_size"],
                           resolution=resolution, augment=d["augment"], crop_padding=d["crop_padding"],
                           hflip=d["hflip"], limit=d["limit"],
                           drop_last=True, generator=torch.Generator().manual_seed(config.seed))
    if len(loaders.train) == 0:
        raise ConfigError(f"data: batch_size {d['batch_size']} exceeds the {loaders.train.num_samples} "
                          "training images")
    return loaders


def make_evaluator(supernet: Supernet, loaders: Any, config: TrainConfig) -> SharedWeightEvaluator:
    """An evaluator on the validation split, calibrating BN on fixed unaugmented training batches."""
    from nas.data import BatchLoader

    calib_loader = BatchLoader(loaders.train.dataset, config.data["batch_size"], shuffle=True,
                               resolution=loaders.train.image_shape[1:], limit=config.data["limit"],
                               generator=torch.Generator().manual_seed(config.seed + 1))
    calibration = []
    for x, _ in calib_loader:
        calibration.append(x)
        if len(calibration) == config.eval["bn_batches"]:
            break
    limit = config.eval["limit"]
    validation = [(x, y) for x, y in loaders.val]
    if limit is not None:
        validation, kept, n = [], 0, limit
        for x, y in loaders.val:
            if kept >= n:
                break
            validation.append((x[:n - kept], y[:n - kept]))
            kept += len(validation[-1][1])
    return SharedWeightEvaluator(supernet, calibration, validation)


@dataclass
class _TrainState:
    """What the loop advances and a checkpoint keeps besides weights and optimizer (step, history,
    sampler and dropout RNGs, data order: loader generator state at the epoch start, batches taken)."""

    loader: Any  # the training BatchLoader; its generator decides each epoch's order
    sampler: np.random.Generator
    torch_rng: torch.Generator
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch_start: torch.Tensor | None = None
    batch_in_epoch: int = 0
    trained_s: float = 0.0  # by earlier calls
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None
    started_s: float = 0.0  # time.perf_counter() when this call's loop began

    @classmethod
    def from_checkpoint(cls, loader: Any, seed: int, payload: dict[str, Any] | None) -> "_TrainState":
        """The state of a fresh run of `seed`, or the one stored in a checkpoint `payload`."""
        state = cls(loader, np.random.default_rng(seed), torch.Generator().manual_seed(seed + 2))
        if payload is not None:
            state.step, state.history = int(payload["step"]), list(payload["history"])
            state.sampler.bit_generator.state = payload["sampler_rng"]
            state.torch_rng.set_state(payload["torch_rng"])
            state.epoch_start, state.batch_in_epoch = payload["epoch_start_rng"], int(payload["batch_in_epoch"])
            state.trained_s = float(payload.get("train_seconds", 0.0))
        return state

    def start(self) -> None:
        """Restart the stored epoch and skip the batches already taken from it; start the clock."""
        if self.epoch_start is not None:
            self.loader.generator.set_state(self.epoch_start)
        self.batches = iter(self.loader)
        self.epoch_start = self.loader.generator.get_state()
        for _ in range(self.batch_in_epoch):
            next(self.batches)
        self.started_s = time.perf_counter()

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next training batch, starting a new epoch when this one is done."""
        while True:
            try:
                batch = next(self.batches)
                self.batch_in_epoch += 1
                return batch
            except StopIteration:
                self.epoch_start = self.loader.generator.get_state()
                self.batches, self.batch_in_epoch = iter(self.loader), 0

    @contextlib.contextmanager
    def dropout_rng(self, enabled: bool) -> Iterator[None]:
        """Torch's global RNG (dropout) runs from `torch_rng` inside, which keeps its advance."""
        with torch.random.fork_rng(enabled=enabled):
            if enabled:
                torch.set_rng_state(self.torch_rng.get_state())
            yield
            if enabled:
                self.torch_rng.set_state(torch.get_rng_state())

    def train_seconds(self) -> float:
        return self.trained_s + time.perf_counter() - self.started_s

    def to_checkpoint(self) -> dict[str, Any]:
        """The checkpoint entries of this state (`RESUME_KEYS` but the optimizer, step, history)."""
        return {"step": self.step, "sampler_rng": self.sampler.bit_generator.state,
                "epoch_start_rng": self.epoch_start, "batch_in_epoch": self.batch_in_epoch,
                "torch_rng": self.torch_rng.get_state(), "history": self.history,
                "train_seconds": self.train_seconds()}


def train_supernet(config: TrainConfig | str | os.PathLike[str], *, stop_after_steps: int | None = None,
                   progress: bool = True, log: Callable[[str], None] = print) -> TrainResult:
    """Train (or resume) the supernet of `config`; stop early after `stop_after_steps` steps of this
    call (the checkpoint is then written at that step)."""
    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_file(config)
    dist_info = init_distributed()
    batch_size = config.data["batch_size"]
    if batch_size % dist_info.world:
        raise ConfigError(f"data: batch_size {batch_size} is not divisible by the {dist_info.world} processes")
    splits = _load_splits(config)
    space = build_space(config, splits.train.num_classes, splits.train.channels)
    loaders = _make_loaders(config, splits, max(space.resolutions))
    spaces = [phase_space(space, p) for p in config.phases]
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        supernet = Supernet(space, config.dropout)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    supernet.to(memory_format=memory_format)  # 3-5x faster depthwise convs on CPU
    optimizer = _make_optimizer(supernet, config.optimizer, config.phases[0].lr)
    checkpoint = config.output_dir / CHECKPOINT_NAME
    payload = load_resumable(checkpoint, config.comparable()) if checkpoint.exists() else None
    state = _TrainState.from_checkpoint(loaders.train, config.seed, payload)
    if payload is not None:
        supernet.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        if dist_info.main:
            where = _locate(config.phases, min(state.step, config.total_steps - 1))
            log(f"resuming from {checkpoint} at step {state.step}/{config.total_steps} "
                f"(phase {config.phases[where[0]].name}, step {where[1]} of the phase)")
    elif dist_info.world > 1:
        broadcast_state(supernet)
    del payload

    evaluator = make_evaluator(supernet, loaders, config) if dist_info.main else None
    governor = ThreadGovernor(torch.get_num_threads())
    governor.enabled = governor.enabled and dist_info.world == 1 and not threads_were_chosen()
    if dist_info.main:
        log(threading_summary(governor.enabled))
    sw, opt_cfg = config.sandwich, config.optimizer
    stop_at = config.total_steps if stop_after_steps is None else min(config.total_steps, state.step + stop_after_steps)
    bar = None
    if progress and dist_info.main:
        from tqdm import tqdm
        bar = tqdm(total=config.total_steps, initial=state.step, unit="step", dynamic_ncols=True)
    loss_avg = acc_avg = None
    supernet.train()
    state.start()
    try:
        while state.step < stop_at:
            index, phase_step = _locate(config.phases, state.step)
            phase, pspace = config.phases[index], spaces[index]
            if phase_step == 0 and phase.reorganize_channels:
                supernet.reorganize_channels(optimizer)  # identical on every rank: same weights
            x, y = state.next_batch()
            if dist_info.world > 1:
                x, y = x[dist_info.rank::dist_info.world], y[dist_info.rank::dist_info.world]
            for group in optimizer.param_groups:
                group["lr"] = lr_at(phase, phase_step)
            x = x.contiguous(memory_format=memory_format)
            archs = sandwich(pspace, state.sampler, sw["num_random"] if phase.num_random is None else phase.num_random)
            optimizer.zero_grad(set_to_none=True)
            with state.dropout_rng(config.dropout > 0):
                mean_loss, acc = sandwich_backward(supernet, x, y, archs, label_smoothing=opt_cfg["label_smoothing"],
                                                   kd_weight=sw["kd_weight"], kd_temperature=sw["kd_temperature"])
            optimizer_step(supernet, optimizer, opt_cfg["grad_clip"], dist_info.world)
            state.step += 1
            loss_avg = mean_loss if loss_avg is None else 0.95 * loss_avg + 0.05 * mean_loss
            acc_avg = acc if acc_avg is None else 0.95 * acc_avg + 0.05 * acc
            if bar is not None:
                bar.update(1)
                bar.set_postfix(phase=phase.name, loss=f"{loss_avg:.3f}", acc=f"{acc_avg:.3f}",
                                lr=f"{lr_at(phase, phase_step):.4f}", threads=torch.get_num_threads(), refresh=False)
            governor.update()
            phase_done = phase_step + 1 == phase.steps
            if phase_done and evaluator is not None:
                evaluator.clear()
                for label, arch in (("max", largest_arch(pspace)), ("min", smallest_arch(pspace))):
                    val_acc = evaluator(arch)
                    state.history.append({"phase": phase.name, "step": state.step, "arch": label, "val_acc": val_acc,
                                          "train_loss": loss_avg, "train_seconds": state.train_seconds()})
                    log(f"phase {phase.name} done at step {state.step}: {label} subnet val acc {val_acc:.4f}")
                supernet.train()
            if dist_info.main and (phase_done or state.step % config.checkpoint_every_steps == 0
                                   or state.step == stop_at):
                save_checkpoint(checkpoint, {
                    "format": FORMAT, "config": config.comparable(), "space": space.to_dict(),
                    "model": supernet.state_dict(), "optimizer": optimizer.state_dict(), **state.to_checkpoint()})
    finally:
        if bar is not None:
            bar.close()
    if dist_info.main and state.step >= config.total_steps:
        atomic_write(config.output_dir / "history.json", json.dumps(state.history, indent=1))
    return TrainResult(supernet.eval(), state.step, config.total_steps, state.history, checkpoint)


def _locate(phases: tuple[Phase, ...], step: int) -> tuple[int, int]:
    for i, phase in enumerate(phases):
        if step < phase.steps:
            return i, step
        step -= phase.steps
    return len(phases) - 1, phases[-1].steps


__all__ = ["CHECKPOINT_NAME", "ELASTIC_DIMS", "CheckpointError", "ConfigError", "Phase", "TrainConfig",
           "TrainResult", "build_space", "kd_loss", "load_checkpoint", "lr_at", "make_evaluator",
           "phase_space", "sandwich", "save_checkpoint", "supernet_from_checkpoint", "train_supernet"]


def checkpoint_config(path: str | os.PathLike[str], data_root: str | None = None, val_limit: int | None = None,
                      payload: dict[str, Any] | None = None) -> TrainConfig:
    """The training config stored in a checkpoint (`data_root` overrides where the dataset is read
    from, `val_limit` caps the validation images used by evaluation; `payload`: the file as read)."""
    payload = load_checkpoint(path) if payload is None else payload
    raw = {**payload["config"], "output_dir": str(Path(path).parent)}
    if data_root is not None:
        raw["data"] = {**raw["data"], "root": data_root}
    if val_limit is not None:
        raw["eval"] = {**raw.get("eval", {}), "limit": val_limit}
    return TrainConfig.from_dict(raw, f"{path} (config)")


def config_loaders(config: TrainConfig, resolution: int) -> Any:
    """`nas.data.Loaders` (train shuffled and augmented as in training, val, test) of a config."""
    return _make_loaders(config, _load_splits(config), resolution)


def checkpoint_evaluator(path: str | os.PathLike[str], data_root: str | None = None,
                         val_limit: int | None = None) -> tuple[Supernet, SharedWeightEvaluator]:
    """The supernet of a checkpoint and a shared-weight evaluator on the data of its config."""
    payload = load_checkpoint(path)
    config = checkpoint_config(path, data_root, val_limit, payload)
    supernet = supernet_from_checkpoint(path, payload)
    loaders = config_loaders(config, max(supernet.space.resolutions))
    return supernet, make_evaluator(supernet, loaders, config)


__all__ += ["checkpoint_config", "checkpoint_evaluator", "config_loaders"]
