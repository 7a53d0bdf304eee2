"""The README's "Target your own device" guide, verbatim (`experiments/device_guide.sh --small`): this
machine stands in for the device, with a torch-free venv as its Python."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_device_guide_runs_verbatim():
    run = subprocess.run(["bash", "experiments/device_guide.sh", "--small"], cwd=ROOT, capture_output=True,
                         text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "calibration fitted on 10 networks measured there" in run.stdout
    report = json.loads((ROOT / "runs/device_guide_small/validate/validate.json").read_text())
    assert report["random"]["calibrated"]["n"] == 10
    assert report["random"]["calibrated"]["mape_pct"] < report["random"]["sum"]["mape_pct"]
    assert "verdict: " in run.stdout
