"""Accuracy by short training from scratch (budgeted; for small spaces and small images)."""

from __future__ import annotations

import itertools
import time
from typing import Any, Sequence

import numpy as np

from nas._arch import Arch
from nas._space import SearchSpace
from nas.evaluators._common import EvaluatorBase
from nas.evaluators._latency import LatencySource


class TrainEvaluator(EvaluatorBase):
    """Train each arch (`nas.build_model`) for `epochs` (at most `max_steps` steps) with SGD and a
    cosine schedule on `dataset`, then report top-1 on its validation split.

    Batch-norm statistics are re-estimated on `bn_batches` training batches before evaluation.
    Seeded: the weights, the data order and the augmentation come from `seed`; the same arch gives
    the same accuracy. `extra` holds train loss, steps and seconds.
    """

    name = "train"

    def __init__(self, space: SearchSpace, latency: Sequence[LatencySource] = (), *,
                 dataset: str = "fashion_mnist_tiny", root: str | None = None, epochs: float = 1.0,
                 max_steps: int | None = None, batch_size: int = 128, lr: float = 0.05,
                 weight_decay: float = 4e-5, augment: bool = False, val_limit: int | None = None,
                 bn_batches: int = 8, seed: int = 0) -> None:
        """The options (``evaluator.options``):

        dataset: a `nas.data` dataset name (fashion_mnist_tiny ships in the package) or folder.
        root: the directory to read the dataset from (default: where `nas.data` finds it).
        epochs: training epochs per arch.
        max_steps: stop after this many steps even if the epochs are not done (null: no cap).
        batch_size: training batch size.
        lr: peak SGD learning rate (cosine schedule).
        weight_decay: SGD weight decay.
        augment: random crop and horizontal flip while training.
        val_limit: validation images scored (null: the whole validation split).
        bn_batches: training batches that re-estimate batch-norm statistics before scoring.
        seed: weights, data order and augmentation (the same arch gives the same accuracy).
        """
        super().__init__(space, latency)
        from nas.data import load_dataset

        self.splits = load_dataset(dataset, root=root, val_fraction=0.1, seed=seed)
        self.dataset = dataset
        self.epochs, self.max_steps = float(epochs), max_steps
        self.batch_size, self.lr, self.weight_decay = int(batch_size), float(lr), float(weight_decay)
        self.augment, self.val_limit, self.seed = bool(augment), val_limit, int(seed)
        self.bn_batches = int(bn_batches)
        self._cache: dict[Arch, tuple[float, dict[str, Any]]] = {}

    def accuracies(self, archs: Sequence[Arch]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        out = [self._train(a) for a in archs]
        return np.array([acc for acc, _ in out]), [extra for _, extra in out]

    def _train(self, arch: Arch) -> tuple[float, dict[str, Any]]:
        if arch in self._cache:
            return self._cache[arch]
        import torch
        from torch import nn

        from nas import build_model
        from nas.data import make_loaders

        start = time.perf_counter()
        loaders = make_loaders(self.splits, self.batch_size, resolution=arch.resolution, augment=self.augment,
                               generator=self.seed, limit=None)
        val = make_loaders(self.splits, 512, resolution=arch.resolution, limit=self.val_limit).val
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = build_model(arch, self.space.num_classes, self.space.in_channels)
        steps = int(round(self.epochs * len(loaders.train)))
        if self.max_steps is not None:
            steps = min(steps, self.max_steps)
        steps = max(1, steps)
        opt = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.9, nesterov=True,
                              weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=steps, pct_start=0.15)
        loss_fn = nn.CrossEntropyLoss()
        model.train()
        done, loss_sum = 0, 0.0
        while done < steps:
            for x, y in loaders.train:
                loss = loss_fn(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += float(loss.detach())
                done += 1
                if done >= steps:
                    break
        # short runs leave BN running statistics far from the final weights': re-estimate them
        from nas.supernet import recalibrate_bn

        recalibrate_bn(model, itertools.islice(loaders.train, self.bn_batches))
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in val:
                correct += int((model(x).argmax(1) == y).sum())
                total += len(y)
        extra = {"train_loss": loss_sum / steps, "train_steps": steps,
                 "train_seconds": round(time.perf_counter() - start, 3)}
        self._cache[arch] = (correct / max(total, 1), extra)
        return self._cache[arch]
