"""Pairing a run's float32 and int8 tables, and the accuracy each front is drawn with."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nas.experiment._results_dtype import accuracy_column, dtype_pairs, ratio_summary


def _t(name, dtype=None, backend="onnxruntime", threads=1, kind="latency table"):
    return {"name": name, "kind": kind, "backend": backend, "threads": threads,
            **({"dtype": dtype} if dtype else {})}


def test_each_int8_table_pairs_with_the_float32_table_of_its_backend_and_threads():
    tables = [_t("tfl", "float32", backend="tflite"), _t("f1", None), _t("f2", "float32", threads=2),
              _t("i2", "int8", threads=2), _t("i1", "int8"), _t("proxy", kind="macs-proxy (not a measured latency)"),
              _t("i4", "int8", threads=4)]
    assert dtype_pairs(tables) == [("f2", "i2"), ("f1", "i1")]  # a table naming no dtype is float32; i4 has no pair
    assert dtype_pairs([_t("f1", "float32"), _t("f2", "float32")]) == []


def test_each_front_uses_its_dtype_s_accuracy_when_recorded():
    df = pd.DataFrame({"accuracy": [0.5], "accuracy_int8": [0.4], "accuracy_float32": [np.nan]})
    assert accuracy_column(df, "int8") == "accuracy_int8"
    assert accuracy_column(df, "float32") == "accuracy"  # recorded for no trial: the objective's accuracy
    s = ratio_summary(("f", "i"), np.array([0.5, 1.0, 1.5, 2.0]))
    assert s["median"] == 1.25 and s["slower_in_int8_pct"] == 50.0 and s["p5"] < s["median"] < s["p95"]
