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

import copy
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from nas._arch import Arch
from nas._space import SearchSpace, load_space
from nas.supernet._bn import resize
from nas.supernet._evaluate import SharedWeightEvaluator
from nas.supernet._ops import SupernetError
from nas.supernet._supernet import ELASTIC, Supernet, largest_arch, smallest_arch

CHECKPOINT_NAME = "checkpoint.pt"
_FORMAT = "hwnas-supernet-v1"
ELASTIC_DIMS = (*ELASTIC, "resolution")


class ConfigError(SupernetError):
    """A supernet training config is invalid; the message names the key."""


class CheckpointError(SupernetError):
    """A checkpoint is unreadable, incomplete or belongs to another config."""


# ---------------------------------------------------------------------- config
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


def lr_at(phase: Phase, step: int) -> float:
    """Linear warmup then cosine decay to zero over the phase (a pure function of the step)."""
    if step < phase.warmup_steps:
        return phase.lr * (step + 1) / phase.warmup_steps
    span = max(1, phase.steps - phase.warmup_steps)
    return 0.5 * phase.lr * (1 + math.cos(math.pi * (step - phase.warmup_steps) / span))


def sandwich(space: SearchSpace, rng: np.random.Generator, num_random: int) -> list[Arch]:
    """The largest, the smallest and `num_random` random archs of `space`, duplicates dropped."""
    archs = [largest_arch(space), smallest_arch(space)] + [space.sample(rng) for _ in range(num_random)]
    return list(dict.fromkeys(archs))


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL divergence between softened teacher and student distributions, scaled by T²."""
    t = temperature
    return F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean") * t * t


# ---------------------------------------------------------------------- checkpoints
def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """`torch.save` to a temporary file in the same directory, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


_CHECKPOINT_KEYS = {"format", "config", "space", "model", "optimizer", "step", "sampler_rng", "epoch_start_rng",
                    "batch_in_epoch", "torch_rng", "history"}


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; `CheckpointError` naming the file if it is
    missing, truncated, corrupt or not a supernet checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... on bad files
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else 'no detail'}); delete it to start "
                              "over or restore a good copy") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise CheckpointError(f"checkpoint {str(path)!r} is not an hwnas supernet checkpoint ({_FORMAT})")
    missing = sorted(_CHECKPOINT_KEYS - set(payload))
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks {missing}")
    return payload


def supernet_from_checkpoint(path: str | os.PathLike[str]) -> Supernet:
    """The trained supernet stored in a checkpoint (eval mode), its space rebuilt from the file."""
    payload = load_checkpoint(path)
    space = SearchSpace(payload["space"], f"{path} (space)")
    supernet = Supernet(space, float(payload["config"].get("dropout", 0.0)))
    try:
        supernet.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {str(path)!r}: weights do not fit the stored space ({err})") from None
    return supernet.eval()


# ---------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed() -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return _Dist(dist.get_rank(), dist.get_world_size())


def _all_reduce_mean(tensors: list[torch.Tensor], world: int) -> None:
    """Replace each tensor by its mean over the ranks, in one flat all-reduce."""
    import torch.distributed as dist

    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def _average_gradients(supernet: Supernet, world: int) -> None:
    """Average the gradients over the ranks. Every rank trained the same subnets, so the set of
    parameters with a gradient is the same everywhere."""
    _all_reduce_mean([p.grad for p in supernet.parameters() if p.grad is not None], world)


def _sync_buffers(supernet: Supernet, world: int) -> None:
    """Average floating-point buffers (BN running statistics) so replicas stay identical."""
    _all_reduce_mean([b for b in supernet.buffers() if b.is_floating_point()], world)


def _broadcast_state(supernet: Supernet) -> None:
    import torch.distributed as dist

    for t in list(supernet.parameters()) + list(supernet.buffers()):
        dist.broadcast(t.data, 0)


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
    dist_info = _init_distributed()
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
        _broadcast_state(supernet)

    evaluator = make_evaluator(supernet, loaders, config) if dist_info.main else None
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
                "format": _FORMAT, "config": config.comparable(), "space": space.to_dict(),
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
            teacher, total_loss, acc = None, 0.0, 0.0
            with torch.random.fork_rng(enabled=config.dropout > 0):
                if config.dropout > 0:
                    torch.set_rng_state(torch_rng.get_state())
                for arch in archs:
                    logits = supernet(resize(x, arch.resolution), arch)
                    loss = F.cross_entropy(logits, y, label_smoothing=opt_cfg["label_smoothing"])
                    if teacher is None:
                        teacher = logits.detach()
                        acc = float((teacher.argmax(1) == y).float().mean())
                    elif sw["kd_weight"] > 0:
                        loss = loss + sw["kd_weight"] * kd_loss(logits, teacher, sw["kd_temperature"])
                    loss.backward()
                    total_loss += loss.item()
                if config.dropout > 0:
                    torch_rng.set_state(torch.get_rng_state())
            if dist_info.world > 1:
                _average_gradients(supernet, dist_info.world)
            if opt_cfg["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(supernet.parameters(), opt_cfg["grad_clip"])
            optimizer.step()
            if dist_info.world > 1:
                _sync_buffers(supernet, dist_info.world)
            step += 1
            mean_loss = total_loss / len(archs)
            loss_avg = mean_loss if loss_avg is None else 0.95 * loss_avg + 0.05 * mean_loss
            acc_avg = acc if acc_avg is None else 0.95 * acc_avg + 0.05 * acc
            if bar is not None:
                bar.update(1)
                bar.set_postfix(phase=phase.name, loss=f"{loss_avg:.3f}", acc=f"{acc_avg:.3f}",
                                lr=f"{lr_at(phase, phase_step):.4f}", refresh=False)
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
