"""Results say when an accuracy difference is within the binomial noise of the images it was measured on."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nas.cli._search import _against_baseline
from nas.experiment import best_under_budgets
from nas.experiment._results import binomial_noise95


def _trials(acc: list[float], ms: list[float], images: int | None) -> pd.DataFrame:
    df = pd.DataFrame({"strategy": "evolution", "trial": range(len(acc)), "state": "COMPLETE", "accuracy": acc,
                       "latency_ms[t]": ms, "arch_short": "a", "arch": [f"{i}" for i in range(len(acc))]})
    if images:
        df["val_images"] = images
    return df


def test_best_arch_carries_the_noise_of_its_accuracy() -> None:
    best = best_under_budgets(_trials([0.88, 0.90], [1.0, 2.0], 500), {"latency_ms[t]": [1.5, 2.5]})
    assert list(best.accuracy) == [0.88, 0.90]
    assert best.acc_noise95.iloc[1] == pytest.approx(1.959964 * math.sqrt(0.9 * 0.1 / 500))
    assert "acc_noise95" not in best_under_budgets(_trials([0.88], [1.0], None), {"latency_ms[t]": [1.5]})
    assert binomial_noise95(0.9, 500, 0.8) == pytest.approx(1.959964 * np.sqrt((0.09 + 0.16) / 500))


def test_the_baseline_comparison_says_within_or_beyond_the_noise() -> None:
    class Rep:
        best = best_under_budgets(_trials([0.90, 0.95], [1.0, 1.2], 500), {"latency_ms[t]": [1.1, 1.3]})

    def baseline(acc: float, budget: float) -> dict:
        return {"scaled_to_ms": budget, "result": {"accuracy": acc, "latency_ms": {"t": 1.0},
                                                   "extra": {"val_images": 500}}}

    near = _against_baseline(Rep, "t", baseline(0.89, 1.1))
    far = _against_baseline(Rep, "t", baseline(0.85, 1.3))
    assert "+1.00 points, within the binomial noise of 500 images" in near
    assert "+10.00 points, beyond the binomial noise of 500 images" in far
    assert _against_baseline(Rep, "t", {"scaled_to_ms": 1.1, "result": {"accuracy": 0.8, "latency_ms": {"t": 1}}}) == ""
