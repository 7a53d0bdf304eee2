"""A build killed mid-pass resumes without losing a row; the device runner works without torch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nas._device._runner import RunnerError, run_pass
from nas.latency import LatencyTable, build_table, write_bundle
from nas.latency._backends import open_torch_entry
from nas.latency._build import work_folder
from nas.latency._work import key_entries, write_work

TINY = str(Path(__file__).with_name("tiny_space.yaml"))


def _nas(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True, **kw)


def test_killed_build_resumes_without_losing_rows(tmp_path, tiny_space, fast_protocol):
    out = tmp_path / "t.csv"
    # a slow protocol so the kill lands mid-pass: ~0.2 s per entry
    cmd = [sys.executable, "-m", "nas", "latency", "build", "--space", TINY, "--backend", "onnxruntime",
           "--out", str(out), "--quiet", "--warmup", "2", "--repeats", "20", "--no-canaries"]
    proc = subprocess.Popen(cmd, start_new_session=True)
    first = work_folder(out) / "passes" / "p0.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not first.exists() or len(first.read_text().splitlines()) < 3):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "no table is written before every pass is done"
    done_before = first.read_text().splitlines()
    assert 3 <= len(done_before) < len(tiny_space().all_block_keys())
    with open(first, "a") as f:  # a torn line, as a crash mid-write leaves
        f.write('{"id": "k0000", "median_')
    space = tiny_space()
    from nas.latency import Protocol

    protocol = Protocol(warmup=2, repeats=20)
    table = build_table(space, "onnxruntime", out, device_name="local", protocol=protocol, progress=False,
                        keep_work=True, canaries=False)
    after = first.read_text().splitlines()
    assert after[: len(done_before)] == done_before, "rows measured before the kill are kept, not redone"
    assert len(after) == len(space.all_block_keys())
    measured_before = {json.loads(line)["id"]: json.loads(line)["median_ms"] for line in done_before}
    assert len(measured_before) == len(done_before)
    assert len(LatencyTable.load(out)) == len(table) == len(space.all_block_keys())


def _torch_blocker(folder: Path) -> Path:
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'yaml', 'pandas'):\n"
        "            raise ImportError(f'{name} is blocked on this device')\n"
        "sys.meta_path.insert(0, _Block())\n")
    return folder


def test_device_runner_without_torch(tmp_path, tiny_space, fast_protocol):
    space = tiny_space()
    bundle = write_bundle(space, "onnxruntime", tmp_path / "bundle.zip", protocol=fast_protocol, progress=False,
                          calibration=0)
    blocker = _torch_blocker(tmp_path / "blocker")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{bundle}"}
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert check.returncode != 0 and "blocked" in check.stderr
    device = tmp_path / "device"
    device.mkdir()
    run = subprocess.run([sys.executable, "-m", "nas.device_runner", str(bundle), "--out", "measured.csv",
                          "--quiet", "--device-name", "pi"], env=env, cwd=device, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    code = subprocess.run([sys.executable, "-c", "import nas.device_runner as d; print(d.__file__)"], env=env,
                          cwd=device, capture_output=True, text=True)
    assert "bundle.zip" in code.stdout, "the runner ran from the bundle's own copy of the code"
    imported = _nas("latency", "import", str(device / "measured.csv"), "--out", str(tmp_path / "pi.csv"))
    assert imported.returncode == 0, imported.stderr
    table = LatencyTable.load(tmp_path / "pi.csv")
    assert table.metadata["device_name"] == "pi" and table.metadata["backend"] == "onnxruntime"
    fp = table.metadata["fingerprint"]  # recorded by the torch-free runner on the device
    assert fp["cpu"]["logical_cpus"] == os.cpu_count() and fp["runtime"]["backend"] == "onnxruntime"
    assert fp["runtime"]["version"] == table.metadata["backend_version"] and fp["machine"]
    table.check_covers(space)
    archs = [space.sample(np.random.default_rng(s)) for s in range(4)]
    assert np.all(table.predict_many(archs, space) > 0)


def test_cli_errors_are_one_line(tmp_path):
    missing = _nas("latency", "show", "--table", str(tmp_path / "none.csv"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr and missing.stderr.count("\n") == 1
    bad = tmp_path / "bad.zip"
    bad.write_text("not a zip")
    run = subprocess.run([sys.executable, "-m", "nas.device_runner", str(bad), "--out", str(tmp_path / "m.csv")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "not a zip file" in run.stderr


def test_torch_entries_are_opened_by_the_host_side_opener(tmp_path, tiny_space, fast_protocol):
    """The torch-free runner opens no torch entry itself: nas.latency passes `open_torch_entry` down."""
    work = tmp_path / "w"
    write_work(work, "torch", key_entries(tiny_space().all_block_keys()[:1], "torch"), fast_protocol, progress=False)
    with pytest.raises(RunnerError, match="'torch' has no model files"):
        run_pass(work, "p0", 0, 1, progress=False)
    run_pass(work, "p0", 0, 1, progress=False, open_entry=open_torch_entry)
    assert len((work / "passes" / "p0.jsonl").read_text().splitlines()) == 1


def test_bundle_networks_calibrate_check_and_validate_from_the_device(tmp_path, tiny_space, fast_protocol):
    """Whole networks ride in the bundle: the torch-free runner measures them, `import` stores the
    canaries and fits the calibration from them, and validation scores the held-out ones."""
    from nas.latency import check_table, validate_measured
    from nas.latency._bundle import CALIBRATION_SEED
    from nas.latency._validate import random_archs
    from nas.latency._work import arch_id

    space = tiny_space()  # 12 archs: 6 to calibrate, 4 held out, 2 canaries
    bundle = write_bundle(space, "onnxruntime", tmp_path / "bundle.zip", protocol=fast_protocol, progress=False,
                          calibration=6, validation=4)
    env = {**os.environ, "PYTHONPATH": f"{_torch_blocker(tmp_path / 'blocker')}{os.pathsep}{bundle}"}
    device = tmp_path / "device"
    device.mkdir()
    run = subprocess.run([sys.executable, "-m", "nas.device_runner", str(bundle), "--out", "measured.csv", "--quiet"],
                         env=env, cwd=device, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "whole networks" in run.stdout
    measured = LatencyTable.load(device / "measured.csv").metadata
    roles = [r for n in measured["networks"] for r in n["roles"]]
    assert roles.count("calibration") == 6 and roles.count("validation") == 4 and roles.count("canary") >= 2
    assert all(n["latency_ms"] > 0 for n in measured["networks"]) and measured["networks_passes"] == 7

    imported = _nas("latency", "import", str(device / "measured.csv"), "--out", str(tmp_path / "dev.csv"))
    assert imported.returncode == 0, imported.stderr
    table = LatencyTable.load(tmp_path / "dev.csv")
    assert "networks" not in table.metadata, "held-out measurements stay out of the table"
    cal = table.calibration
    expected = [arch_id(a, space.num_classes, space.in_channels) for a in random_archs(space, 6, CALIBRATION_SEED)]
    assert cal is not None and cal.info["arch_ids"] == expected, "calibrated on the bundle's archs, as calibrate draws them"
    by_id = {n["id"]: n["latency_ms"] for n in measured["networks"]}
    assert cal.info["network_ms"] == [by_id[i] for i in expected], "fitted on the device's numbers"
    canaries = table.metadata["canaries"]
    assert [c["latency_ms"] for c in canaries["archs"]] == [by_id[c["id"]] for c in canaries["archs"]]

    report = validate_measured(table, space, device / "measured.csv")
    assert report["random"]["calibrated"]["n"] == 4 and len(report["rows"]) == 4
    assert not set(r["arch_id"] for r in report["rows"]) & set(expected), "held out from the calibration"
    assert report["random"]["calibrated"]["mape_pct"] < report["random"]["sum"]["mape_pct"]
    cli = _nas("latency", "validate", "--table", str(tmp_path / "dev.csv"), "--measured", str(device / "measured.csv"),
               "--out-dir", str(tmp_path / "val"))
    assert cli.returncode == 0, cli.stderr
    assert json.loads((tmp_path / "val" / "validate.json").read_text())["random"]["calibrated"]["n"] == 4

    result = check_table(table, space, work=tmp_path / "check", progress=False)  # this machine is the device
    assert [r["name"] for r in result.rows] == [c["name"] for c in canaries["archs"]]
    assert [r["table_ms"] for r in result.rows] == [by_id[c["id"]] for c in canaries["archs"]], \
        "checked against the device's own canary timings"
    assert not result.diffs, "same machine: no fingerprint field differs (the verdict of tiny nets is noise)"
