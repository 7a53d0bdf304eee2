"""Pareto fronts and hypervolume for (accuracy up, latency down)."""

from __future__ import annotations

import numpy as np


def pareto_mask(accuracy: np.ndarray, latency_ms: np.ndarray) -> np.ndarray:
    """True for points no other point beats (higher-or-equal accuracy at lower-or-equal latency,
    strictly better in one)."""
    acc, lat = np.asarray(accuracy, float), np.asarray(latency_ms, float)
    order = np.lexsort((-acc, lat))  # by latency, then best accuracy first
    mask = np.zeros(len(acc), dtype=bool)
    best = -np.inf
    for i in order:
        if acc[i] > best:
            mask[i] = True
            best = acc[i]
    return mask


def hypervolume(accuracy: np.ndarray, latency_ms: np.ndarray, ref_accuracy: float, ref_latency_ms: float) -> float:
    """Area dominated by the points and bounded by the reference (worst) point: accuracy above
    `ref_accuracy`, latency below `ref_latency_ms`. Larger is better."""
    acc, lat = np.asarray(accuracy, float), np.asarray(latency_ms, float)
    keep = (acc > ref_accuracy) & (lat < ref_latency_ms) & np.isfinite(acc) & np.isfinite(lat)
    acc, lat = acc[keep], lat[keep]
    if not len(acc):
        return 0.0
    mask = pareto_mask(acc, lat)
    acc, lat = acc[mask], lat[mask]
    order = np.argsort(lat)
    acc, lat = acc[order], lat[order]
    # staircase: between consecutive front latencies, the best accuracy reached so far counts
    edges = np.append(lat, ref_latency_ms)
    return float(np.sum((edges[1:] - edges[:-1]) * (acc - ref_accuracy)))
