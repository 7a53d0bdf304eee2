"""Table format, errors, the vectorized predictor and the differentiable expectation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import nas
from nas.latency import Calibration, LatencyTable, MissingKeyError, TableError
from nas._device._files import sidecar_path


def synthetic_table(space, seed: int = 0) -> LatencyTable:
    """Every key of `space` with a distinct positive latency (the predictor is under test, not timing)."""
    rng = np.random.default_rng(seed)
    entries = {k: {"latency_ms": float(rng.uniform(0.01, 2.0)), "mean_ms": 1.0, "std_ms": 0.1, "p90_ms": 1.1,
                   "count": 150, "passes": 3, "spread_pct": 1.0, "remeasured": 0, "flagged": 0}
               for k in space.all_block_keys()}
    meta = {"backend": "onnxruntime", "backend_version": "onnxruntime test", "threads": 1, "device_name": "synthetic",
            "protocol": {}, "space": {"name": space.name, "resolutions": list(space.resolutions),
                                      "num_classes": space.num_classes, "in_channels": space.in_channels}}
    return LatencyTable(entries, meta)


@pytest.fixture(scope="module", params=["ofa_mbv3", "mnasnet"])
def space_table(request):
    space = nas.load_space(request.param, resolutions=[32, 64], num_classes=10, in_channels=1)
    return space, synthetic_table(space)


def test_save_load_round_trip(tmp_path, space_table):
    space, table = space_table
    path = table.save(tmp_path / "t.csv")
    again = LatencyTable.load(path)
    assert len(again) == len(table) == len(space.all_block_keys())
    for key in table.keys():
        assert again.lookup_ms(key) == pytest.approx(table.lookup_ms(key), rel=1e-5)
    header = path.read_text().splitlines()[0].split(",")
    assert header[:4] == ["kind", "op", "in_hw", "in_channels"] and "latency_ms" in header and "flagged" in header


def test_missing_key_names_key_and_file(tmp_path, space_table):
    space, table = space_table
    path = table.save(tmp_path / "t.csv")
    table = LatencyTable.load(path)
    other = nas.load_space(space.name, resolutions=[48], num_classes=10, in_channels=1)
    key = other.all_block_keys()[0]
    with pytest.raises(MissingKeyError, match=f"{key.short()}.*{path}"):
        table.lookup_ms(key)
    with pytest.raises(KeyError):
        table.lookup_ms(key)
    with pytest.raises(TableError, match=r"does not cover .* missing layer\(s\)"):
        table.check_covers(other)
    with pytest.raises(TableError, match="does not cover"):
        table.predict_many([other.sample(np.random.default_rng(0))], other)


def test_corrupt_and_mismatched_files_are_named(tmp_path, space_table):
    _, table = space_table
    path = table.save(tmp_path / "t.csv")
    text = path.read_text()
    meta = json.loads(sidecar_path(path).read_text())

    path.write_text(text[: len(text) // 2])  # truncated mid-row
    with pytest.raises(TableError, match="t.csv"):
        LatencyTable.load(path)
    path.write_text(text.replace("block,", "blok,", 1))  # a bad cell
    with pytest.raises(TableError, match="line .*malformed|checksum"):
        LatencyTable.load(path)
    path.write_text(text + text.splitlines()[1] + "\n")  # duplicate row, count mismatch
    with pytest.raises(TableError, match="duplicate key|rows but its metadata"):
        LatencyTable.load(path)
    path.write_text(text)
    sidecar_path(path).write_text(json.dumps({**meta, "entries": meta["entries"] + 1}))
    with pytest.raises(TableError, match="do not belong together"):
        LatencyTable.load(path)
    sidecar_path(path).write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(TableError, match="format_version"):
        LatencyTable.load(path)
    sidecar_path(path).write_text(json.dumps({k: v for k, v in meta.items() if k != "threads"}))
    with pytest.raises(TableError, match="lacks field.*threads"):
        LatencyTable.load(path)
    sidecar_path(path).write_text("{not json")
    with pytest.raises(TableError, match="not valid JSON"):
        LatencyTable.load(path)
    sidecar_path(path).unlink()
    with pytest.raises(TableError, match="no metadata file"):
        LatencyTable.load(path)
    with pytest.raises(TableError, match="does not exist"):
        LatencyTable.load(tmp_path / "nope.csv")


def test_vectorized_predict_equals_per_arch_sum(space_table):
    space, table = space_table
    rng = np.random.default_rng(1)
    archs = [space.sample(rng) for _ in range(300)] + [space.preset(n) for n in space.preset_names]
    per_arch = np.array([sum(table.lookup_ms(k) for k in space.block_keys(a)) for a in archs])
    assert np.allclose(table.predict_many(archs, space), per_arch, rtol=1e-12)
    index = table.compile(space).encode_indices(archs)
    assert np.allclose(table.predict_many(index, space), per_arch, rtol=1e-12)
    assert np.allclose(table.predict_many([space.encode(a) for a in archs], space), per_arch, rtol=1e-12)
    table.set_calibration(Calibration(1.1, 0.01, 0.2, per_mparam_ms=0.05, cache_mparams=2.0))
    try:
        calibrated = np.array([table.predict(a, space) for a in archs])
        assert np.allclose(table.predict_many(index, space), calibrated)
        assert not np.allclose(calibrated, per_arch)
        # weights of the head and the "mb" blocks only: all three paths count the same layers
        table.set_calibration(Calibration(1.1, 0.01, 0.2, per_mparam_ms=0.05, cache_mparams=0.5,
                                          spill_families=["mb", "head"]))
        some = np.array([table.predict(a, space) for a in archs])
        assert np.allclose(table.predict_many(index, space), some)
        assert not np.allclose(some, calibrated)
        dims, choices = space.dims, space.encode(archs[0])
        one_hot = {d: torch.tensor([1.0 if o == choices[d] else 0.0 for o in opts]) for d, opts in dims.items()}
        assert float(table.expected(one_hot, space)) == pytest.approx(some[0], rel=1e-6)
    finally:
        table.set_calibration(None)


def test_expected_matches_one_hot_and_monte_carlo_and_has_gradients(space_table):
    space, table = space_table
    dims = space.dims
    rng = np.random.default_rng(2)
    for arch in [space.sample(rng) for _ in range(5)]:
        choices = space.encode(arch)
        probs = {d: torch.tensor([1.0 if o == choices[d] else 0.0 for o in opts]) for d, opts in dims.items()}
        assert float(table.expected(probs, space)) == pytest.approx(table.predict(arch, space), rel=1e-6)
    logits = {d: torch.zeros(len(opts), requires_grad=True) for d, opts in dims.items() if len(opts) > 1}
    value = table.expected({d: torch.softmax(t, 0) for d, t in logits.items()}, space)
    value.backward()
    samples = [space.sample(rng) for _ in range(3000)]
    mc = table.predict_many(samples, space)
    assert float(value) == pytest.approx(mc.mean(), abs=4 * mc.std() / np.sqrt(len(mc)))
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in logits.values())
    depth = next(d for d in logits if d.endswith(".depth"))
    assert logits[depth].grad.abs().sum() > 0  # deeper stages cost more
    with pytest.raises(nas.HwnasError, match="no probabilities given"):
        table.expected({depth: torch.softmax(logits[depth], 0)}, space)


def test_calibration_fit_recovers_a_linear_model():
    rng = np.random.default_rng(0)
    summed = rng.uniform(1, 10, 40)
    layers = rng.integers(10, 30, 40)
    mparams = rng.uniform(1, 8, 40)
    measured = 1.05 * summed - 0.01 * layers + 0.2 * np.maximum(mparams - 4.0, 0) + 0.3
    cal = Calibration.fit(summed, layers, mparams, measured)
    assert (cal.scale, cal.per_layer_ms, cal.per_mparam_ms, cal.offset_ms) == pytest.approx(
        (1.05, -0.01, 0.2, 0.3 + 0.2 * (cal.cache_mparams - 4.0)), abs=0.02)
    assert cal.apply(summed, layers, mparams) == pytest.approx(measured, rel=0.03)
    one = Calibration.fit(summed[:3], layers[:3], mparams[:3], 1.2 * summed[:3])  # too few: one scale
    assert one.scale == pytest.approx(1.2) and one.per_layer_ms == 0.0
    assert Calibration.from_dict(cal.to_dict()).to_dict() == cal.to_dict()


def test_calibration_fit_chooses_the_layer_families_whose_weights_spill():
    rng = np.random.default_rng(1)
    summed, layers = rng.uniform(0.2, 1.0, 60), rng.integers(10, 30, 60)
    weights = {"mb": rng.uniform(0, 8, 60), "conv": rng.uniform(0, 6, 60), "head": rng.uniform(0.3, 0.5, 60)}
    spill = weights["mb"] + weights["head"]  # the convs' weights cost nothing extra
    measured = 0.8 * summed - 0.004 * layers + 0.1 * np.maximum(spill - 4.0, 0) + 0.05
    cal = Calibration.fit(summed, layers, weights, measured)
    assert cal.spill_families == ("head", "mb")
    assert cal.apply(summed, layers, spill) == pytest.approx(measured, rel=0.02)
    everything = Calibration.fit(summed, layers, sum(weights.values()), measured)  # one weight count
    assert everything.spill_families is None
    assert np.abs(everything.apply(summed, layers, sum(weights.values())) / measured - 1).mean() > 0.02
    assert Calibration.from_dict(cal.to_dict()).spill_families == ("head", "mb")


def test_coverage_error_names_the_dimension_that_differs():
    """A table built for 1 input channel and width 0.5 checked against other shapes: the error says which."""
    table = LatencyTable.load("latency_tables/x86-2core_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv")
    rgb = nas.load_space("ofa_mbv3", resolutions=[28], num_classes=10, in_channels=3, width_mult=0.5)
    with pytest.raises(TableError, match=r"built for in_channels 1, the space has 3 \(1 missing"):
        table.check_covers(rgb)
    wide = nas.load_space("ofa_mbv3", resolutions=[28], num_classes=10, in_channels=1, width_mult=1.0)
    with pytest.raises(TableError, match=r"built for width_mult 0.5, the space has 1.0 \(93 missing") as err:
        table.check_covers(wide)
    assert "in_channels" not in str(err.value) and "num_classes" not in str(err.value)
    table.check_covers(nas.load_space("ofa_mbv3", resolutions=[28], num_classes=10, in_channels=1, width_mult=0.5))

