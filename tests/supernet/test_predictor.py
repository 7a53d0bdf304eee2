"""Accuracy predictor: one-hot encoding, fitting a known signal, held-out report, save/load."""

from __future__ import annotations

import numpy as np
import pytest

import nas
from nas.supernet import (
    AccuracyPredictor,
    SupernetError,
    kendall_tau,
    largest_arch,
    load_accuracy_predictor,
    one_hot,
    smallest_arch,
)


def test_one_hot_blocks_and_missing_layers_are_zero(tiny_space):
    dims = tiny_space.dims
    features = one_hot(tiny_space, [largest_arch(tiny_space), smallest_arch(tiny_space)])
    assert features.shape == (2, sum(len(o) for o in dims.values()))
    per_layer = sum(1 for name in dims if name.count(".") == 2)
    depth_dims = sum(1 for name in dims if name.endswith(".depth"))
    assert features[0].sum() == 1 + depth_dims + per_layer  # every layer exists at max depth
    assert features[1].sum() == 1 + depth_dims + per_layer // 2  # depth 2 of 4 in every stage
    assert set(np.unique(features)) == {0.0, 1.0}


def test_predictor_learns_a_known_signal_and_reports_heldout_quality(tiny_space, tmp_path):
    rng = np.random.default_rng(0)
    archs = list(dict.fromkeys(tiny_space.sample(rng) for _ in range(160)))
    macs = np.log([nas.count_macs(a, 10, 1) for a in archs])
    accuracy = 0.80 + 0.1 * (macs - macs.min()) / (macs.max() - macs.min()) + rng.normal(0, 0.003, len(archs))
    predictor = AccuracyPredictor(tiny_space, seed=0)
    report = predictor.fit(archs, accuracy, heldout_fraction=0.25, epochs=300, seed=0)
    assert report.num_heldout == round(0.25 * len(archs)) and report.num_train + report.num_heldout == len(archs)
    assert report.heldout_rmse < 0.5 * report.heldout_spread
    assert report.heldout_kendall_tau > 0.6
    path = tmp_path / "p.pt"
    predictor.save(path)
    loaded = load_accuracy_predictor(path, space=tiny_space)
    with pytest.raises(SupernetError, match=r"another space \(keys \['width_mult'\] differ\)"):
        load_accuracy_predictor(path, space=nas.load_space("ofa_mbv3", resolutions=[32], num_classes=10, in_channels=1))
    np.testing.assert_allclose(loaded.predict(archs[:5]), predictor.predict(archs[:5]), rtol=0, atol=1e-7)
    with pytest.raises(SupernetError, match="bad.pt.* is unreadable"):
        (tmp_path / "bad.pt").write_bytes(b"")
        AccuracyPredictor.load(tmp_path / "bad.pt")


def test_fit_needs_enough_pairs(tiny_space):
    with pytest.raises(SupernetError, match=">= 5"):
        AccuracyPredictor(tiny_space).fit([largest_arch(tiny_space)], [0.9])


def test_kendall_tau():
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
