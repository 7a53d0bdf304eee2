"""int8 latency tables: quantized blocks run in ONNX Runtime, tables record their dtype and round-trip,
fp32 and int8 work never mix, and a table of the wrong dtype is refused by name (real runtimes, no mocks)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from nas._device import RunnerError
from nas._device._runtimes import open_model
from nas.latency import BackendError, LatencyTable, build_table, measure_archs
from nas.latency._backends import prepare
from nas.latency._work import key_entries, write_work


@pytest.fixture(scope="module")
def int8_table(tmp_path_factory, tiny_space, fast_protocol) -> LatencyTable:
    out = tmp_path_factory.mktemp("int8") / "tiny_int8.csv"
    return build_table(tiny_space(), "onnxruntime", out, threads=1, device_name="here", protocol=fast_protocol,
                       progress=False, canaries=False, dtype="int8")


def test_quantized_block_is_qdq_int8_and_runs_in_onnxruntime(tmp_path, tiny_space):
    key = tiny_space().all_block_keys()[1]
    (fp32,), (int8,) = key_entries([key], "onnxruntime"), key_entries([key], "onnxruntime", "int8", {})
    assert fp32["id"] != int8["id"] and fp32["file"] != int8["file"] and int8["id"].endswith("-int8")
    prepare("onnxruntime", int8, tmp_path)
    graph = onnx.load(str(tmp_path / int8["file"])).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    weights = [i for i in graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert weights and any(len(i.dims) == 4 for i in weights)  # conv weights stored as int8
    scales = [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in {w.name for w in weights}]
    assert any(n.attribute for n in scales)  # per-channel: an axis attribute on the weights' DequantizeLinear
    out = open_model("onnxruntime", str(tmp_path / int8["file"]), threads=1)()
    assert np.all(np.isfinite(out[0])) and out[0].shape[1] == key.out_channels
    assert list(tmp_path.glob("**/*.float32.onnx")) == []  # the float32 intermediate is gone


def test_int8_table_round_trips_with_dtype_and_settings(int8_table, tmp_path, tiny_space):
    meta = int8_table.metadata
    assert meta["dtype"] == "int8"
    assert meta["quantization"] == {"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
                                    "per_channel": True, "activation_type": "QUInt8", "weight_type": "QInt8",
                                    "calibrate_method": "MinMax", "reduce_range": False}
    loaded = LatencyTable.load(int8_table.path)
    assert loaded.metadata["dtype"] == "int8" and loaded.metadata["quantization"] == meta["quantization"]
    assert loaded.keys() == int8_table.keys()
    for key in loaded.keys():
        assert loaded.entry(key) == pytest.approx(int8_table.entry(key), rel=1e-5)
    assert json.loads(int8_table.path.with_suffix(".json").read_text())["dtype"] == "int8"
    # whole networks of an int8 table are quantized too (calibration, validation, canaries)
    space = tiny_space()
    arch = space.sample(np.random.default_rng(0))
    work = tmp_path / "nets"
    measured = measure_archs([arch], space, int8_table, work, progress=False, keep_work=True, passes=3)
    assert measured[0] > 0
    (model,) = (work / "models").iterdir()
    assert model.name.endswith("-int8.onnx")
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(model)).graph.node}


def test_fp32_and_int8_work_never_mix(tmp_path, tiny_space, fast_protocol):
    keys = tiny_space().all_block_keys()[:1]
    write_work(tmp_path, "onnxruntime", key_entries(keys, "onnxruntime"), fast_protocol, progress=False)
    with pytest.raises(RunnerError, match="other settings"):
        write_work(tmp_path, "onnxruntime", key_entries(keys, "onnxruntime", "int8", {}), fast_protocol,
                   progress=False)


@pytest.mark.parametrize("backend,words", [("tflite", "litert-torch"), ("torch", "eager torch")])
def test_int8_on_other_backends_is_refused_with_the_reason(tmp_path, tiny_space, fast_protocol, backend, words):
    with pytest.raises(BackendError, match=f"--dtype int8 --backend {backend} is not supported: .*{words}"):
        build_table(tiny_space(), backend, tmp_path / "t.csv", protocol=fast_protocol, progress=False,
                    canaries=False, dtype="int8")


def _as_float32(table: LatencyTable, path) -> str:  # the same entries, recorded as a float32 table
    meta = {k: v for k, v in table.metadata.items() if k not in ("quantization", "csv_sha256", "entries")}
    LatencyTable({k: table.entry(k) for k in table.keys()}, {**meta, "dtype": "float32"}).save(path)
    return str(path)


def test_dtype_mismatch_in_a_search_config_names_both_dtypes(int8_table, tmp_path, tiny_space):
    from nas.experiment import ConfigError, build_latency, config_from_dict

    space = tiny_space()
    fp32 = _as_float32(int8_table, tmp_path / "tiny_fp32.csv")

    def config(*tables):
        return config_from_dict({"space": {"name": str(space.source)}, "evaluator": {"name": "synthetic"},
                                 "latency": {"tables": list(tables)}})

    with pytest.raises(ConfigError, match=r"latency\.tables\.0\.dtype: the config expects float32 latency but .* is "
                                          r"a table of int8 models"):
        build_latency(config({"path": str(int8_table.path), "dtype": "float32"}), space)
    with pytest.raises(ConfigError, match=r"expects int8 latency but .* is a table of float32 models"):
        build_latency(config({"path": fp32, "dtype": "int8"}), space)
    with pytest.raises(ConfigError, match=r"mixes float32 and int8 tables"):
        build_latency(config({"path": fp32}, {"path": str(int8_table.path)}), space)
    sources = build_latency(config({"path": fp32, "dtype": "float32"}, {"path": str(int8_table.path), "dtype": "int8"}),
                            space)  # said explicitly: a search over both fronts
    assert [s.table.metadata["dtype"] for s in sources] == ["float32", "int8"]
    assert len(build_latency(config({"path": str(int8_table.path)}), space)) == 1  # default: the table's own
    with pytest.raises(ConfigError, match=r"latency\.tables\.0\.dtype: unknown dtype 'int4'"):
        config({"path": fp32, "dtype": "int4"})


def test_int8_default_table_name_carries_the_dtype():
    from nas.cli._latency import default_table_path

    assert default_table_path("pi", "onnxruntime", 1, "ofa_mbv3", [28], 10, 1, 0.5, "int8").name == \
        "pi_onnxruntime_t1_int8_ofa_mbv3_r28_10cls_1ch_w0.5.csv"
    assert default_table_path("pi", "onnxruntime", 1, "ofa_mbv3", [28], 10, 1, 0.5).name == \
        "pi_onnxruntime_t1_ofa_mbv3_r28_10cls_1ch_w0.5.csv"


def test_int8_bundle_runs_on_a_torch_free_device_and_imports_as_int8(tmp_path, tiny_space, fast_protocol):
    import os
    import subprocess
    import sys

    from nas.latency import import_measured, validate_measured, write_bundle

    space = tiny_space()
    bundle = write_bundle(space, "onnxruntime", tmp_path / "bundle.zip", protocol=fast_protocol, progress=False,
                          calibration=4, validation=2, dtype="int8")
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nclass _Block:\n    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n            raise ImportError(f'{name} is blocked')\n"
        "sys.meta_path.insert(0, _Block())\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{bundle}"}
    run = subprocess.run([sys.executable, "-m", "nas.device_runner", str(bundle), "--out", "measured.csv", "--quiet"],
                         env=env, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    table = import_measured(tmp_path / "measured.csv", tmp_path / "dev_int8.csv", space=space)
    assert table.metadata["dtype"] == "int8" and table.metadata["quantization"]["activation_type"] == "QUInt8"
    assert table.calibration is not None and len(table.calibration.info["arch_ids"]) == 4
    report = validate_measured(table, space, tmp_path / "measured.csv")
    assert report["dtype"] == "int8" and report["random"]["calibrated"]["n"] == 2


def test_one_search_over_float32_and_int8_tables_draws_both_fronts(int8_table, tmp_path, tiny_space, fast_protocol):
    """A search scored on a float32 and an int8 table of one backend: results pairs them, puts both
    fronts on one figure (dtypes.png) and summarizes the int8/float32 speed-up across the space."""
    from nas.experiment import build_latency, config_from_dict, report, run_search

    space = tiny_space()
    fp32 = build_table(space, "onnxruntime", tmp_path / "tiny_fp32.csv", threads=1, device_name="here",
                       protocol=fast_protocol, progress=False, canaries=False)
    raw = {"name": "d", "run_dir": str(tmp_path / "run"), "space": {"name": str(space.source)},
           "evaluator": {"name": "synthetic"}, "strategy": {"name": "random"}, "search": {"n_trials": 12, "progress": False},
           "latency": {"tables": [{"path": str(int8_table.path), "name": "i8", "dtype": "int8"},
                                  {"path": str(fp32.path), "name": "f32", "dtype": "float32"}]}}
    run_search(config_from_dict(raw))
    rep = report(tmp_path / "run")
    assert rep.dtype_plot == tmp_path / "run" / "dtypes.png" and rep.dtype_plot.stat().st_size > 10_000
    (row,) = rep.dtype_ratios.itertuples()
    assert (row.float32_table, row.int8_table, row.archs) == ("f32", "i8", 1000)
    assert row.p5 <= row.median <= row.p95 and 0 <= row.slower_in_int8_pct <= 100
    by_name = {s.name: s for s in build_latency(config_from_dict(raw), space)}
    arch = space.sample(np.random.default_rng(0))
    ratio = by_name["i8"].predict_many([arch])[0] / by_name["f32"].predict_many([arch])[0]
    assert ratio != 1.0  # two measured tables, not one table twice
    assert (tmp_path / "run" / "dtype_ratio.csv").is_file()
