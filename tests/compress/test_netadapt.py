"""NetAdapt on a small once-for-all space (one arch, 32×32) with real ONNX Runtime timings and real (tiny) Fashion-MNIST training:
widths timed on the fly land in the table with its protocol, and a killed run resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from nas.compress import load_state, prunable, with_widths
from nas.latency import LatencyTable, Protocol, build_table, time_keys

FAST = Protocol(warmup=2, repeats=3, runs=3, min_repeat_ms=0.2, max_runs=20, passes=3, remeasure_passes=1)

SETUP = """
import sys, torch
import nas
from nas.compress import Env, NetAdaptConfig, netadapt
from nas.data import load_dataset, make_loaders
from nas.latency import LatencyTable
torch.manual_seed(0)
torch.set_num_threads(1)
space = nas.load_space("ofa_mbv3", resolutions=[32], num_classes=10, in_channels=1, width_mult=0.5).restrict(
    kernel=[3], expand=[3], depth=[2])
loaders = make_loaders(load_dataset("fashion_mnist_tiny", val_fraction=0.2, seed=0), batch_size=64,
                       resolution=32, augment=False, generator=0)
validation = [b for b in loaders.val]
"""


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory):
    import nas

    space = nas.load_space("ofa_mbv3", resolutions=[32], num_classes=10, in_channels=1, width_mult=0.5).restrict(
        kernel=[3], expand=[3], depth=[2])
    out = tmp_path_factory.mktemp("netadapt") / "tiny.csv"
    build_table(space, "onnxruntime", out, threads=1, protocol=FAST, canaries=False, progress=False)
    return space, out


def largest(space):
    from nas.supernet import largest_arch

    return largest_arch(space)


def test_widths_timed_on_the_fly_land_in_the_table_with_its_protocol(tiny_table, tmp_path):
    space, path = tiny_table
    table = LatencyTable.load(path)
    arch = largest(space)
    narrow = with_widths(arch, {"block2": 24})
    old_keys, new_keys = space.block_keys(arch), space.block_keys(narrow)
    added = [k for k in new_keys if k not in table]
    assert len(added) == 1 and added[0].mid == 24
    got = time_keys(table, added, tmp_path / "work", references=old_keys)
    table.save(tmp_path / "ext.csv")
    back = LatencyTable.load(tmp_path / "ext.csv")
    entry = back.entry(added[0])
    assert got[added[0]] == pytest.approx(entry["latency_ms"], rel=1e-5) and entry["latency_ms"] > 0
    assert back.metadata["protocol"] == FAST.to_dict() and back.metadata["backend"] == "onnxruntime"
    assert entry["passes"] >= FAST.passes  # timed in the protocol's independent passes
    record = back.metadata["extended"][-1]
    assert record["entries"] == 1 and record["references"] == len(set(old_keys)) and record["drift_factor"] > 0
    assert not (tmp_path / "work").exists()
    assert time_keys(back, added, tmp_path / "work2") == {added[0]: back.lookup_ms(added[0])}  # cached: no timing


RUN = SETUP + """
from nas.supernet import largest_arch
table = LatencyTable.load(sys.argv[2] + "/table.csv") if __import__("os").path.exists(sys.argv[2] + "/table.csv") \\
    else LatencyTable.load(sys.argv[1])
net = nas.build_model(largest_arch(space), num_classes=10, in_channels=1)
config = NetAdaptConfig(ratio=0.85, step_pct=5.0, short_steps=3, lr=0.01, passes=3, seed=0)
from pathlib import Path
netadapt(net, config, Env(loaders.train, validation, table, space, Path(sys.argv[2]), progress=False))
print("finished")
"""


def test_a_killed_run_resumes_without_repeating_finished_iterations(tiny_table, tmp_path):
    _, table_path = tiny_table
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(RUN))
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(table_path), str(run)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    state = None
    while time.monotonic() < deadline and proc.poll() is None:
        state = load_state(run) if (run / "state.json").exists() else None
        if state and state["iterations"]:
            break
        time.sleep(0.2)
    if proc.poll() is not None:
        pytest.fail(f"the run ended before it could be killed:\n{proc.stdout.read()}")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = load_state(run)["iterations"][0]
    mtime = (run / "iter001.pt").stat().st_mtime_ns
    done = subprocess.run([sys.executable, str(script), str(table_path), str(run)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    state = load_state(run)
    assert state["done"] and state["iterations"][0] == first  # read back, not redone
    assert (run / "iter001.pt").stat().st_mtime_ns == mtime
    assert [it["iteration"] for it in state["iterations"]] == list(range(1, len(state["iterations"]) + 1))
    check = state["checks"][-1]
    assert check["measured_ms"] <= state["target_ms"]
    widths = [prunable(json_arch(it["arch"])) for it in state["iterations"]]
    for before, after, it in zip([prunable(json_arch(state["start"]["arch"]))] + widths, widths, state["iterations"]):
        changed = {n for n in before if before[n] != after[n]}
        assert changed == {it["layer"]} and after[it["layer"]] == it["width"] < before[it["layer"]]
        assert it["width"] >= before[it["layer"]] // 2  # max_cut 0.5: at most half the channels per iteration
        assert it["val_top1"] == max(c["val_top1"] for c in it["candidates"].values())
    table = LatencyTable.load(run / "table.csv")
    assert any(k.mid for k in table.keys()) or any(it["layer"] == "head" for it in state["iterations"])
    assert json.loads((run / "table.json").read_text())["protocol"] == FAST.to_dict()


def json_arch(data):
    from nas import Arch

    return Arch.from_dict(data)


def test_cli_compress_then_finetune_and_export_the_pruned_model(tmp_path):
    """`nas compress` from a (2-step) supernet's subnet, then `nas finetune --model` and `nas extract --model`:
    the pruned network measures under its target, and its ONNX export computes what torch does."""
    import numpy as np
    import onnxruntime as ort
    import torch

    import nas
    from nas.cli import main
    from nas.supernet import TrainConfig, load_extracted, train_supernet

    config = {"seed": 0, "output_dir": str(tmp_path / "ckpt"), "space": {"name": "ofa_mbv3", "resolutions": [28],
              "width_mult": 0.5}, "data": {"dataset": "fashion_mnist_tiny", "batch_size": 16, "limit": 96},
              "eval": {"bn_batches": 1, "limit": 64, "batch_size": 32}, "phases": [{"name": "full", "steps": 2, "lr": 0.05}]}
    train_supernet(TrainConfig.from_dict(config), progress=False, log=lambda s: None)
    ckpt = str(tmp_path / "ckpt" / "checkpoint.pt")
    space = nas.load_space("ofa_mbv3", resolutions=[28], num_classes=10, in_channels=1, width_mult=0.5)
    arch = space.preset("ofa_max", resolution=28)
    (tmp_path / "a.json").write_text(arch.to_json())
    build_table(space, "onnxruntime", tmp_path / "t.csv", threads=1, protocol=FAST, canaries=False, progress=False)
    run = tmp_path / "run"
    assert main(["compress", "--checkpoint", ckpt, "--arch", str(tmp_path / "a.json"), "--table", str(tmp_path / "t.csv"),
                 "--ratio", "0.9", "--short-steps", "2", "--passes", "3", "--out", str(run), "--recalibrate-bn", "1",
                 "--no-baseline", "--quiet", "--threads", "1"]) == 0
    state = load_state(run)
    assert state["done"] and state["checks"][-1]["measured_ms"] <= state["target_ms"]
    pruned = load_extracted(run / "pruned.pt")
    assert pruned.arch != arch and (run / "trajectory.png").stat().st_size > 0
    assert json_arch(json.loads((run / "pruned.json").read_text())) == pruned.arch
    assert main(["finetune", "--checkpoint", ckpt, "--model", str(run / "pruned.pt"), "--steps", "2",
                 "--recalibrate-bn", "1", "--out", str(tmp_path / "ft.pt"), "--quiet"]) == 0
    assert main(["extract", "--checkpoint", ckpt, "--model", str(tmp_path / "ft.pt"), "--format", "onnx",
                 "--out", str(tmp_path / "ft.onnx")]) == 0
    tuned = load_extracted(tmp_path / "ft.pt")
    assert tuned.arch == pruned.arch
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        want = tuned(x).numpy()
    session = ort.InferenceSession(str(tmp_path / "ft.onnx"), providers=["CPUExecutionProvider"])
    got = np.concatenate([session.run(None, {session.get_inputs()[0].name: x[i:i + 1].numpy()})[0] for i in range(2)])
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
