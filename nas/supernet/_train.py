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

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from nas.supernet._checkpoint import (FORMAT, CheckpointError, load_checkpoint, save_checkpoint,
                                      supernet_from_checkpoint)
from nas.supernet._config import ELASTIC_DIMS, ConfigError, Phase, TrainConfig, build_space, phase_space
from nas.supernet._evaluate import SharedWeightEvaluator
from nas.supernet._step import (average_gradients, broadcast_state, init_distributed, kd_loss, lr_at,
                                sandwich, sandwich_backward, sync_buffers)
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
        return load_dataset(d["dataset"], d["root"], val_fraction=d["val_fraction"], seed=config.seed)
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
    sampler = np.random.default_rng(config.seed)
    torch_rng = torch.Generator().manual_seed(config.seed + 2)  # dropout
    step, history, trained_s = 0, [], 0.0
    checkpoint = config.output_dir / CHECKPOINT_NAME
    epoch_start: torch.Tensor | None = None
    batch_in_epoch = 0
    if checkpoint.exists():
        payload = load_checkpoint(checkpoint)
        if payload.get("weights_only"):
            raise CheckpointError(f"checkpoint {str(checkpoint)!r} holds weights only (no optimizer or data "
                                  "order), so training cannot resume from it; use another output_dir")
        if payload["config"] != config.comparable():
            changed = sorted(k for k in set(payload["config"]) | set(config.comparable())
                             if payload["config"].get(k) != config.comparable().get(k))
            raise CheckpointError(f"checkpoint {str(checkpoint)!r} was written by a different config "
                                  f"(differs in {changed}); use another output_dir or delete the checkpoint")
        supernet.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        step, history = int(payload["step"]), list(payload["history"])
        sampler.bit_generator.state = payload["sampler_rng"]
        torch_rng.set_state(payload["torch_rng"])
        epoch_start, batch_in_epoch = payload["epoch_start_rng"], int(payload["batch_in_epoch"])
        trained_s = float(payload.get("train_seconds", 0.0))
        if dist_info.main:
            where = _locate(config.phases, min(step, config.total_steps - 1))
            log(f"resuming from {checkpoint} at step {step}/{config.total_steps} "
                f"(phase {config.phases[where[0]].name}, step {where[1]} of the phase)")
    elif dist_info.world > 1:
        broadcast_state(supernet)

    evaluator = make_evaluator(supernet, loaders, config) if dist_info.main else None
    governor = ThreadGovernor(torch.get_num_threads())
    governor.enabled = governor.enabled and dist_info.world == 1 and not threads_were_chosen()
    if dist_info.main:
        log(threading_summary(governor.enabled))
    train_loader = loaders.train
    if epoch_start is not None:
        train_loader.generator.set_state(epoch_start)
    batches = iter(train_loader)
    epoch_start = train_loader.generator.get_state()
    for _ in range(batch_in_epoch):
        next(batches)

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        nonlocal batches, epoch_start, batch_in_epoch
        while True:
            try:
                batch = next(batches)
                batch_in_epoch += 1
                return batch
            except StopIteration:
                epoch_start = train_loader.generator.get_state()
                batches, batch_in_epoch = iter(train_loader), 0

    def save() -> None:
        if dist_info.main:
            save_checkpoint(checkpoint, {
                "format": FORMAT, "config": config.comparable(), "space": space.to_dict(),
                "model": supernet.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "sampler_rng": sampler.bit_generator.state, "epoch_start_rng": epoch_start,
                "batch_in_epoch": batch_in_epoch, "torch_rng": torch_rng.get_state(), "history": history,
                "train_seconds": trained_s + time.perf_counter() - started})

    sw, opt_cfg = config.sandwich, config.optimizer
    stop_at = config.total_steps if stop_after_steps is None else min(config.total_steps, step + stop_after_steps)
    bar = None
    if progress and dist_info.main:
        from tqdm import tqdm
        bar = tqdm(total=config.total_steps, initial=step, unit="step", dynamic_ncols=True)
    loss_avg = acc_avg = None
    supernet.train()
    started = time.perf_counter()
    try:
        while step < stop_at:
            index, phase_step = _locate(config.phases, step)
            phase, pspace = config.phases[index], spaces[index]
            if phase_step == 0 and phase.reorganize_channels:
                supernet.reorganize_channels(optimizer)  # identical on every rank: same weights
            x, y = next_batch()
            if dist_info.world > 1:
                x, y = x[dist_info.rank::dist_info.world], y[dist_info.rank::dist_info.world]
            for group in optimizer.param_groups:
                group["lr"] = lr_at(phase, phase_step)
            x = x.contiguous(memory_format=memory_format)
            archs = sandwich(pspace, sampler, sw["num_random"] if phase.num_random is None else phase.num_random)
            optimizer.zero_grad(set_to_none=True)
            with torch.random.fork_rng(enabled=config.dropout > 0):
                if config.dropout > 0:
                    torch.set_rng_state(torch_rng.get_state())
                mean_loss, acc = sandwich_backward(supernet, x, y, archs, label_smoothing=opt_cfg["label_smoothing"],
                                                   kd_weight=sw["kd_weight"], kd_temperature=sw["kd_temperature"])
                if config.dropout > 0:
                    torch_rng.set_state(torch.get_rng_state())
            if dist_info.world > 1:
                average_gradients(supernet, dist_info.world)
            if opt_cfg["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(supernet.parameters(), opt_cfg["grad_clip"])
            optimizer.step()
            if dist_info.world > 1:
                sync_buffers(supernet, dist_info.world)
            step += 1
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
                    history.append({"phase": phase.name, "step": step, "arch": label, "val_acc": val_acc,
                                    "train_loss": loss_avg,
                                    "train_seconds": trained_s + time.perf_counter() - started})
                    log(f"phase {phase.name} done at step {step}: {label} subnet val acc {val_acc:.4f}")
                supernet.train()
            if phase_done or step % config.checkpoint_every_steps == 0 or step == stop_at:
                save()
    finally:
        if bar is not None:
            bar.close()
    if dist_info.main and step >= config.total_steps:
        summary = config.output_dir / "history.json"
        tmp = summary.with_name(".history.json.tmp")
        tmp.write_text(json.dumps(history, indent=1))
        os.replace(tmp, summary)
    return TrainResult(supernet.eval(), step, config.total_steps, history, checkpoint)


def _locate(phases: tuple[Phase, ...], step: int) -> tuple[int, int]:
    for i, phase in enumerate(phases):
        if step < phase.steps:
            return i, step
        step -= phase.steps
    return len(phases) - 1, phases[-1].steps


__all__ = ["CHECKPOINT_NAME", "ELASTIC_DIMS", "CheckpointError", "ConfigError", "Phase", "TrainConfig",
           "TrainResult", "build_space", "kd_loss", "load_checkpoint", "lr_at", "make_evaluator",
           "phase_space", "sandwich", "save_checkpoint", "supernet_from_checkpoint", "train_supernet"]


def checkpoint_config(path: str | os.PathLike[str], data_root: str | None = None,
                      val_limit: int | None = None) -> TrainConfig:
    """The training config stored in a checkpoint (`data_root` overrides where the dataset is read
    from, `val_limit` caps the validation images used by evaluation)."""
    payload = load_checkpoint(path)
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
    config = checkpoint_config(path, data_root, val_limit)
    supernet = supernet_from_checkpoint(path)
    loaders = config_loaders(config, max(supernet.space.resolutions))
    return supernet, make_evaluator(supernet, loaders, config)


__all__ += ["checkpoint_config", "checkpoint_evaluator", "config_loaders"]
