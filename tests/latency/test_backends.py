"""One suite every backend passes: build a real table of a tiny space, reload it, predict with it."""

from __future__ import annotations

import numpy as np
import pytest

from nas.latency import BACKENDS, LatencyTable, backend_unavailable_reason, build_table


@pytest.fixture(scope="module", params=BACKENDS)
def built(request, tmp_path_factory, fast_protocol, tiny_space):
    backend = request.param
    reason = backend_unavailable_reason(backend)
    if reason:
        pytest.skip(f"backend {backend} not installed: {reason}")
    space = tiny_space()
    out = tmp_path_factory.mktemp(backend) / f"tiny_{backend}.csv"
    table = build_table(space, backend, out, threads=1, device_name="ci", protocol=fast_protocol, progress=False,
                        canaries=False)
    return backend, space, table, out


def test_every_key_measured_with_protocol_recorded(built, fast_protocol):
    backend, space, table, out = built
    keys = space.all_block_keys()
    assert len(table) == len(keys)
    for key in keys:
        entry = table.entry(key)
        assert entry["latency_ms"] > 0 and entry["passes"] >= fast_protocol.passes
        assert entry["count"] >= fast_protocol.passes * fast_protocol.repeats * fast_protocol.runs
        assert entry["mean_ms"] > 0 and entry["p90_ms"] >= 0 and entry["spread_pct"] >= 0
    meta = table.metadata
    assert meta["backend"] == backend and meta["threads"] == 1 and meta["device_name"] == "ci"
    assert meta["backend_version"].split()[0] in ("onnxruntime", "ai-edge-litert", "tflite-runtime", "torch")
    assert meta["protocol"] == fast_protocol.to_dict()
    assert meta["space"]["name"] == "tiny" and meta["space"]["resolutions"] == [32]
    assert meta["device"]["cpu_model"] and meta["date"] and meta["batch_size"] == 1 and meta["dtype"] == "float32"
    assert not out.with_name(out.name + ".work").exists(), "work folder is removed once the table is written"


def test_bigger_layer_is_slower(built):
    _, space, table, _ = built
    keys = space.all_block_keys()
    stem = next(k for k in keys if k.kind == "stem")
    big = max((k for k in keys if k.kind == "block"), key=lambda k: k.in_hw ** 2 * k.in_channels * k.expand * k.kernel)
    assert big.in_hw == 16 and big.kernel == 5  # expand + k5 depthwise + project: ~110 k MACs; the stem ~9 k
    assert table.lookup_ms(big) > 1.2 * table.lookup_ms(stem)


def test_round_trip_and_predict(built):
    _, space, table, out = built
    again = LatencyTable.load(out)
    assert again.keys() == table.keys()
    for key in table.keys():
        assert again.entry(key) == pytest.approx(table.entry(key), rel=1e-5)
    assert again.metadata == table.metadata
    archs = [space.sample(np.random.default_rng(s)) for s in range(8)]
    single = np.array([again.predict(a, space) for a in archs])
    assert np.allclose(again.predict_many(archs, space), single)
    assert np.allclose(single, [sum(again.lookup_ms(k) for k in space.block_keys(a)) for a in archs])
