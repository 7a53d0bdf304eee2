"""Evaluators: Result round-trip, sizes match the foundation counters, synthetic optimum, training."""

from __future__ import annotations

import numpy as np
import pytest

import nas
from nas.evaluators import MacsProxy, PredictorEvaluator, Result, SyntheticEvaluator, TrainEvaluator
from nas import Codec


@pytest.fixture(scope="module")
def space() -> nas.SearchSpace:
    return nas.load_space("ofa_mbv3", resolutions=[32], num_classes=10, in_channels=1)


def test_result_round_trip_and_is_frozen() -> None:
    r = Result(0.9, {"cpu": 1.5, "gpu": 0.3}, 1000, 2000, {"note": 1})
    assert Result.from_dict(r.to_dict()) == r
    assert r.latency() == 1.5 and r.latency("gpu") == 0.3
    with pytest.raises(AttributeError):
        r.accuracy = 0.1  # type: ignore[misc]


def test_sizes_and_macs_proxy_match_counters(space) -> None:
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(5)]
    ev = SyntheticEvaluator(space, [MacsProxy(space, gmacs_per_s=2.0)], seed=0)
    for arch, r in zip(archs, ev.evaluate_many(archs)):
        assert r.params == nas.count_params(arch, 10, 1)
        assert r.macs == nas.count_macs(arch, 10, 1)
        assert r.latency_ms["macs-proxy"] == pytest.approx(r.macs / 2e9 * 1e3)


def test_arch_outside_the_space_is_refused(space) -> None:
    other = nas.load_space("ofa_mbv3", resolutions=[64], num_classes=10, in_channels=1)
    arch = other.sample(np.random.default_rng(0))
    with pytest.raises(nas.ArchError, match="resolution 64"):
        SyntheticEvaluator(space, seed=0).evaluate(arch)


def test_codec_rows_are_canonical_and_round_trip() -> None:
    for name in ("ofa_mbv3", "mnasnet"):
        sp = nas.load_space(name, resolutions=[32])
        codec = Codec(sp)
        rows = codec.sample(np.random.default_rng(1), 64)
        archs = codec.decode_many(rows)
        for row, arch in zip(rows, archs):
            choices = sp.encode(arch)
            assert codec.choices(codec.encode(arch)) == choices
            assert sp.decode(codec.choices(row)) == arch


def test_synthetic_optimum_is_unique_max(space) -> None:
    ev = SyntheticEvaluator(space, seed=3)
    best = ev.evaluate(ev.optimum()).accuracy
    assert best == pytest.approx(ev.high)
    rng = np.random.default_rng(0)
    neighbours = [space.mutate(ev.optimum(), rng, 0.05) for _ in range(50)]
    accs = [ev.evaluate(a).accuracy for a in neighbours if a != ev.optimum()]
    assert accs and max(accs) < best and min(accs) > ev.low
    assert SyntheticEvaluator(space, seed=4).optimum() != ev.optimum()


def test_predictor_evaluator_batches(space) -> None:
    calls = []

    def predict(archs):  # a real (tiny) predictor: accuracy grows with MACs
        calls.append(len(archs))
        return np.array([min(0.99, nas.count_macs(a, 10, 1) / 2e7) for a in archs])

    ev = PredictorEvaluator(space, predict, [MacsProxy(space)])
    rng = np.random.default_rng(0)
    results = ev.evaluate_many([space.sample(rng) for _ in range(7)])
    assert calls == [7] and all(0 < r.accuracy < 1 for r in results)


@pytest.mark.slow  # ~15 s on an idle 2-core box (two short trainings)
def test_train_evaluator_learns_and_is_deterministic(space) -> None:
    small = space.restrict(depth=[2], kernel=[3], expand=[3])
    arch = small.sample(np.random.default_rng(0))
    ev = TrainEvaluator(small, [MacsProxy(small)], epochs=1.0, max_steps=30, batch_size=64, lr=0.1,
                        val_limit=256, seed=0)
    r = ev.evaluate(arch)
    assert r.accuracy > 0.5  # 10 classes: chance is 0.1 (0.73 measured)
    assert r.extra["train_steps"] == 30
    again = TrainEvaluator(small, [MacsProxy(small)], epochs=1.0, max_steps=30, batch_size=64, lr=0.1,
                           val_limit=256, seed=0).evaluate(arch)
    assert again.accuracy == r.accuracy


def test_supernet_evaluator_adapts_shared_weights() -> None:
    supernet_mod = pytest.importorskip("nas.supernet")
    import torch

    from nas.evaluators._supernet import SupernetEvaluator

    sp = nas.load_space("ofa_mbv3", resolutions=[32], num_classes=10, in_channels=1, width_mult=0.5)
    torch.manual_seed(0)
    net = supernet_mod.Supernet(sp).eval()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 1, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g)
    shared = supernet_mod.SharedWeightEvaluator(net, [x], [(x, y)])
    ev = SupernetEvaluator(sp, shared, [MacsProxy(sp)])
    rng = np.random.default_rng(0)
    archs = [sp.sample(rng) for _ in range(2)]
    results = ev.evaluate_many(archs)
    assert [r.accuracy for r in results] == [shared(a) for a in archs]
    assert all(r.macs == nas.count_macs(a, 10, 1) for r, a in zip(results, archs))


def test_latency_of_rows_equals_latency_of_archs() -> None:
    from pathlib import Path

    from nas.evaluators import TableLatency
    from nas.latency import LatencyTable

    sp = nas.load_space("ofa_mbv3", resolutions=[28], num_classes=10, in_channels=1, width_mult=0.5)
    root = Path(__file__).resolve().parents[2]
    table = LatencyTable.load(root / "latency_tables" / "xeon-amx-2core_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv")
    codec = Codec.of(sp)
    rows = codec.sample(np.random.default_rng(0), 20)  # not canonical: layers beyond the depth cost nothing
    archs = codec.decode_many(rows)
    for source in (TableLatency(table, sp), MacsProxy(sp)):
        assert np.array_equal(source.predict_rows(rows), source.predict_many(archs))


def test_option_index_keeps_bools_numbers_and_strings_apart() -> None:
    from nas._codec import option_index

    assert option_index((1, True), True) == 1 and option_index((True, 1), 1) == 1
    assert option_index((0.0, 0.25), 0) == 0 and option_index(("1",), 1) is None


def test_supernet_evaluator_scores_simulated_int8_on_request_and_keeps_float32_for_the_float32_front() -> None:
    """The shipped quickstart supernet with (empty, unchecked) tables of each dtype: float32 accuracy by
    default; `int8: true` scores simulated int8 and, beside a float32 table, records float32 too."""
    pytest.importorskip("nas.supernet")
    from pathlib import Path

    from nas.data import DatasetError, find_dataset_root
    from nas.evaluators import TableLatency
    from nas.evaluators._supernet import SupernetEvaluator, table_dtypes
    from nas.latency import LatencyTable

    try:
        find_dataset_root("fashion_mnist")
    except DatasetError:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    weights = str(Path(__file__).resolve().parents[2] / "experiments/weights/supernet_fmnist.pt")
    sp = nas.load_space("ofa_mbv3", resolutions=[28], num_classes=10, in_channels=1, width_mult=0.5)
    int8, fp32 = (TableLatency(LatencyTable({}, {"dtype": d}), sp, name=d, check=False) for d in ("int8", "float32"))
    assert table_dtypes([int8, fp32, MacsProxy(sp)]) == {"int8", "float32"}
    arch = sp.sample(np.random.default_rng(0))

    def score(sources, **options):
        ev = SupernetEvaluator.from_checkpoint(sp, sources, checkpoint=weights, val_limit=300, **options)
        acc, extras = ev.accuracies([arch])
        return ev.int8, float(acc[0]), extras[0]

    simulated, accuracy, extra = score([int8, fp32], int8=True)
    assert simulated and set(extra) == {"accuracy_float32", "val_images"} and extra["val_images"] == 300
    assert score([int8, fp32]) == (False, extra["accuracy_float32"], {"val_images": 300})  # the default: float32
    assert score([int8], int8=True) == (True, accuracy, {"val_images": 300})  # one dtype: nothing else to record
