"""Calibration and validation measure real whole networks end to end (tiny space, ONNX Runtime)."""

from __future__ import annotations

import csv
import json

import pytest

from nas.latency import LatencyTable, build_table
from nas.latency._validate import calibrate, format_report, validate


def test_calibrate_then_validate_on_held_out_archs(tmp_path, tiny_space, fast_protocol):
    space = tiny_space()
    out = tmp_path / "t.csv"
    table = build_table(space, "onnxruntime", out, device_name="ci", protocol=fast_protocol, progress=False,
                        canaries=False)
    cal, before, after = calibrate(table, space, n=5, seed=3, progress=False)
    assert cal.info["fitted_on"] == 5 and len(cal.info["arch_ids"]) == 5
    assert after.mape_pct <= before.mape_pct + 1e-9  # least squares cannot do worse than scale 1 on its own data
    table.save(out)
    table = LatencyTable.load(out)
    assert table.calibration.scale == pytest.approx(cal.scale)
    report = validate(table, space, n=5, seed=0, out_dir=tmp_path / "v", progress=False)
    rows = list(csv.DictReader(open(tmp_path / "v" / "validate.csv")))
    assert len(rows) == 5 and not {r["arch_id"] for r in rows} & set(cal.info["arch_ids"]), "held out"
    for r in rows:
        assert float(r["measured_ms"]) > 0 and float(r["summed_ms"]) > 0
        assert float(r["predicted_ms"]) == pytest.approx(cal.apply(float(r["summed_ms"]), int(r["layers"]),
                                                                   float(r["mweights"])), rel=1e-4)
    saved = json.loads((tmp_path / "v" / "validate.json").read_text())
    assert saved["random"]["calibrated"]["n"] == 5 and set(saved["random"]["sum"]) >= {
        "rmse_ms", "mape_pct", "within_5pct", "within_10pct", "kendall_tau"}
    assert (tmp_path / "v" / "validate.png").stat().st_size > 1000
    assert "calibrated" in format_report(report)
