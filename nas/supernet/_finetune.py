"""Fine-tune an extracted subnet, optionally distilled from a teacher (once-for-all's in-place KD, after
the search): ``nas finetune``.

The loss is cross-entropy (label smoothing as in supernet training) plus ``kd_weight`` times the KL
divergence to the teacher's logits at temperature T (`kd_loss`, scaled by T²). SGD with Nesterov
momentum, a cosine learning rate from ``lr`` to 0 over ``steps``. Seeded: the data order and
augmentation come from ``seed``, so two runs that differ only in the teacher see the same batches
(paired comparisons). A run can save its state every ``checkpoint_every`` steps and resume from it.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from nas._atomic import atomic_path
from nas.supernet._bn import resize
from nas.supernet._step import kd_loss


@dataclass(frozen=True)
class FinetuneConfig:
    """How `finetune` trains (recorded beside the result)."""

    steps: int = 500
    """SGD steps (batches)."""
    lr: float = 0.01
    """Peak learning rate (cosine to 0)."""
    momentum: float = 0.9
    weight_decay: float = 3e-5
    label_smoothing: float = 0.1
    kd_weight: float = 0.0
    """Weight of the distillation term; 0: plain fine-tuning (the teacher is not run)."""
    kd_temperature: float = 1.0
    seed: int = 0
    """Data order and augmentation (the loader's generator) and torch's RNG."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.lr <= 0 or self.kd_weight < 0 or self.kd_temperature <= 0:
            raise ValueError(f"finetune: steps >= 1, lr > 0, kd_weight >= 0 and kd_temperature > 0 needed, got {self}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _lr(config: FinetuneConfig, step: int) -> float:
    return 0.5 * config.lr * (1 + math.cos(math.pi * step / config.steps))


def finetune(net: nn.Module, train: Any, config: FinetuneConfig, *, resolution: int | None = None,
             teacher: nn.Module | None = None, resume: str | os.PathLike[str] | None = None,
             checkpoint_every: int = 100, on_step: Callable[[int, float], None] | None = None) -> nn.Module:
    """Fine-tune `net` in place on batches of `train` (an iterable of (images, labels); one with a
    ``generator`` attribute, like `nas.data.BatchLoader`, is reseeded with ``config.seed``) for
    ``config.steps`` steps, images resized to `resolution`; returns it in eval mode.

    teacher: soft targets when ``config.kd_weight`` > 0 (required then; run in eval mode, no grad).
    resume: a file for the run's state (net, optimizer, step, config), written atomically every
    `checkpoint_every` steps and read back when present (a rerun continues; its config must match);
    removed when the run finishes. on_step(step, loss): progress callback.
    """
    if config.kd_weight > 0 and teacher is None:
        raise ValueError("finetune: kd_weight > 0 needs a teacher")
    torch.manual_seed(config.seed)
    if hasattr(train, "generator"):
        train.generator.manual_seed(config.seed)
    optimizer = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                                weight_decay=config.weight_decay)
    start = _restore(resume, net, optimizer, config)
    net.train()
    if teacher is not None:
        teacher.eval()
    batches = _cycle(train, skip=start)
    for step in range(start, config.steps):
        x, y = next(batches)
        x = resize(x, resolution) if resolution else x
        for group in optimizer.param_groups:
            group["lr"] = _lr(config, step)
        logits = net(x)
        loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
        if config.kd_weight > 0:
            with torch.no_grad():
                soft = teacher(x)
            loss = loss + config.kd_weight * kd_loss(logits, soft, config.kd_temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step is not None:
            on_step(step + 1, float(loss.detach()))
        if resume is not None and (step + 1) % checkpoint_every == 0 and step + 1 < config.steps:
            _save(resume, net, optimizer, config, step + 1)
    if resume is not None and os.path.exists(resume):
        os.remove(resume)
    return net.eval()


def _cycle(train: Iterable[Any], skip: int = 0):  # noqa: ANN202 - a generator of batches
    """Batches of `train` forever (a new pass when one ends), the first `skip` drawn and dropped so
    a resumed run sees the batches an uninterrupted one would."""
    seen = 0
    while True:
        empty = True
        for batch in train:
            empty = False
            seen += 1
            if seen > skip:
                yield batch
        if empty:
            raise ValueError("finetune: the training data has no batches")


def _save(path: str | os.PathLike[str], net: nn.Module, optimizer: torch.optim.Optimizer, config: FinetuneConfig,
          step: int) -> None:
    with atomic_path(path) as tmp:
        torch.save({"step": step, "config": config.to_dict(), "net": net.state_dict(),
                    "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state()}, tmp)


def _restore(path: str | os.PathLike[str] | None, net: nn.Module, optimizer: torch.optim.Optimizer,
             config: FinetuneConfig) -> int:
    if path is None or not os.path.exists(path):
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("config") != config.to_dict():
        raise ValueError(f"finetune: {str(path)!r} holds a run with other settings ({state.get('config')}); "
                         "delete it or use the same settings")
    net.load_state_dict(state["net"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    return int(state["step"])


__all__ = ["FinetuneConfig", "finetune"]
