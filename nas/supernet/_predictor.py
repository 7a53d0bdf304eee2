"""Accuracy predictor (once-for-all style): an MLP on the one-hot arch encoding.

Trained on (arch, shared-weight accuracy) pairs that ``nas supernet sample-accuracy`` collects, it
predicts the accuracy of thousands of archs per millisecond for the search. `fit` holds out a part
of the pairs and reports its RMSE and Kendall τ there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from nas._arch import Arch
from nas._atomic import atomic_path
from nas._codec import Codec
from nas._space import SearchSpace
from nas.supernet._ops import SupernetError

_FORMAT = "hwnas-accuracy-predictor-v1"


def one_hot(space: SearchSpace, archs: Sequence[Arch]) -> np.ndarray:
    """float32 ``(len(archs), sum of option counts)``: `Codec.one_hot` of the archs (one block per
    choice of ``space.dims``; layers beyond their stage's depth are all zeros)."""
    codec = Codec.of(space)
    return codec.one_hot(codec.encode_many(archs))


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall rank correlation (tau-b) of two equally long sequences."""
    from scipy.stats import kendalltau

    return float(kendalltau(np.asarray(a), np.asarray(b)).statistic)


@dataclass(frozen=True)
class PredictorReport:
    """Held-out quality of a fitted predictor (accuracies on the 0..1 scale)."""

    num_train: int
    num_heldout: int
    train_rmse: float
    heldout_rmse: float
    heldout_kendall_tau: float
    heldout_spread: float
    """Standard deviation of the held-out accuracies: an RMSE well below it means the predictor
    explains more than the mean does."""


class AccuracyPredictor(nn.Module):
    """``predict(archs)`` -> accuracies; an MLP (ReLU) over `one_hot`, output around the mean accuracy."""

    def __init__(self, space: SearchSpace, hidden: Sequence[int] = (128, 128), seed: int = 0) -> None:
        super().__init__()
        self.space = space
        self.hidden = tuple(int(h) for h in hidden)
        width = sum(len(o) for o in space.dims.values())
        layers: list[nn.Module] = []
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            for h in self.hidden:
                layers += [nn.Linear(width, h), nn.ReLU()]
                width = h
            layers.append(nn.Linear(width, 1))
            self.mlp = nn.Sequential(*layers)
        self.register_buffer("offset", torch.zeros(()))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features).squeeze(1) + self.offset

    @torch.no_grad()
    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """Predicted accuracy (0..1 scale of the training data) of each arch."""
        self.eval()
        return self(torch.from_numpy(one_hot(self.space, archs))).numpy()

    def fit(self, archs: Sequence[Arch], accuracies: Sequence[float], *, heldout_fraction: float = 0.2,
            epochs: int = 600, lr: float = 3e-3, weight_decay: float = 1e-4, seed: int = 0) -> PredictorReport:
        """Train on a random (1 - heldout_fraction) share of the pairs, report on the rest."""
        if len(archs) != len(accuracies) or len(archs) < 5:
            raise SupernetError(f"fit needs >= 5 (arch, accuracy) pairs of equal count, got "
                                f"{len(archs)} archs and {len(accuracies)} accuracies")
        x = torch.from_numpy(one_hot(self.space, archs))
        y = torch.tensor(np.asarray(accuracies, np.float32))
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(archs))
        n_held = max(1, int(round(heldout_fraction * len(archs)))) if heldout_fraction > 0 else 0
        held, train = order[:n_held], order[n_held:]
        self.offset.fill_(float(y[train].mean()))
        optimizer = torch.optim.Adam(self.mlp.parameters(), lr=lr, weight_decay=weight_decay)
        self.train()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            for _ in range(epochs):
                optimizer.zero_grad(set_to_none=True)
                loss = torch.mean((self(x[train]) - y[train]) ** 2)
                loss.backward()
                optimizer.step()
        self.eval()
        with torch.no_grad():
            pred = self(x).numpy()
        target = y.numpy()

        def rmse(idx: np.ndarray) -> float:
            return float(np.sqrt(np.mean((pred[idx] - target[idx]) ** 2))) if len(idx) else float("nan")

        tau = kendall_tau(pred[held], target[held]) if len(held) > 1 else float("nan")
        return PredictorReport(len(train), len(held), rmse(train), rmse(held), tau,
                               float(target[held].std()) if len(held) else float("nan"))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write weights and the space (plain types) atomically; `load` reads them back."""
        with atomic_path(path) as tmp:
            torch.save({"format": _FORMAT, "space": self.space.to_dict(), "hidden": list(self.hidden),
                        "state_dict": self.state_dict()}, tmp)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "AccuracyPredictor":
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise SupernetError(f"predictor {str(path)!r} is unreadable ({type(err).__name__})") from None
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise SupernetError(f"{str(path)!r} is not an hwnas accuracy predictor ({_FORMAT})")
        predictor = cls(SearchSpace(payload["space"], f"{path} (space)"), payload["hidden"])
        predictor.load_state_dict(payload["state_dict"])
        return predictor.eval()


def load_accuracy_predictor(path: str | os.PathLike[str], space: SearchSpace | None = None) -> AccuracyPredictor:
    """Load a predictor written by ``nas supernet fit-predictor``; with `space`, check that it was
    trained on that space (same declaration) and name the differing keys otherwise.

    path: the predictor file ``nas supernet fit-predictor`` wrote.
    """
    predictor = AccuracyPredictor.load(path)
    if space is not None:
        theirs, ours = predictor.space.to_dict(), space.to_dict()
        diff = sorted(k for k in set(theirs) | set(ours) if k != "description" and theirs.get(k) != ours.get(k))
        if diff:
            raise SupernetError(f"predictor {str(path)!r} was trained on another space (keys {diff} differ)")
    return predictor


__all__ = ["AccuracyPredictor", "PredictorReport", "kendall_tau", "load_accuracy_predictor", "one_hot"]
