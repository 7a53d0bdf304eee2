"""Supernet training: config validation, phases, sandwich, exact resume, corrupt checkpoints, CLI."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import nas
from nas.cli import main as cli_main
from nas.supernet import (
    checkpoint_evaluator,
    CheckpointError,
    ConfigError,
    Phase,
    TrainConfig,
    extract,
    largest_arch,
    load_checkpoint,
    load_extracted,
    phase_space,
    sandwich,
    save_checkpoint,
    smallest_arch,
    supernet_from_checkpoint,
    train_supernet,
)
from nas.supernet._train import kd_loss, lr_at


def tiny_config(output_dir: Path, **overrides) -> dict:
    config = {
        "seed": 0, "output_dir": str(output_dir),
        "space": {"name": "ofa_mbv3", "resolutions": [32], "width_mult": 0.5},
        "data": {"dataset": "fashion_mnist_tiny", "batch_size": 16, "limit": 96},
        "eval": {"bn_batches": 1, "limit": 32, "batch_size": 32},
        "checkpoint_every_steps": 2,
        "phases": [{"name": "full", "steps": 2, "lr": 0.05},
                   {"name": "kernel", "steps": 2, "lr": 0.02, "elastic": ["kernel"]},
                   {"name": "all", "steps": 3, "lr": 0.02, "elastic": ["kernel", "depth", "expand"],
                    "num_random": 1, "reorganize_channels": True}],
    }
    config.update(overrides)
    return config


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ---------------------------------------------------------------------- config
@pytest.mark.parametrize("patch,words", [
    ({"lr_schedule": "cos"}, r"config: lr_schedule: unknown key; allowed: \['channels_last', "),
    ({"data": {"dataset": "fashion_mnist_tiny", "batchsize": 8}}, r"data\.batchsize: unknown key; allowed"),
    ({"sandwich": {"kd_temp": 2}}, r"sandwich\.kd_temp: unknown key"),
    ({"phases": [{"name": "a", "steps": 1, "lr": 0.1, "elastic": ["width"]}]}, r"elastic \['width'\]"),
    ({"phases": [{"name": "a", "steps": 1, "lr": 0.1, "epochs": 3}]}, r"phases\.0\.epochs: unknown key"),
    ({"phases": [{"name": "a", "lr": 0.1}]}, r"phases\.0\.steps: missing key"),
    ({"optimizer": {"name": "lamb"}}, "'lamb' is not 'sgd' or 'adamw'"),
    ({"checkpoint_every_steps": "often"}, "checkpoint_every_steps: expected int, got 'often'"),
    ({"checkpoint_every_steps": True}, "checkpoint_every_steps: expected int, got True"),
    ({"dropout": "0.1"}, "dropout: expected float, got '0.1'"),
    ({"data": None}, "data: expected a mapping, got None"),
    ({"phases": []}, "at least one phase"),
])
def test_config_errors_name_the_key(tmp_path, patch, words):
    with pytest.raises(ConfigError, match=words):
        TrainConfig.from_dict(tiny_config(tmp_path, **patch))


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        TrainConfig.from_file(bad)


def test_quickstart_config_is_valid():
    config = TrainConfig.from_file(Path(__file__).parents[2] / "experiments" / "supernet_fmnist.yaml")
    assert [p.name for p in config.phases][:4] == ["full", "kernel", "depth", "expand"]


# ---------------------------------------------------------------------- phases, sandwich, schedule
def test_phase_spaces_open_one_dimension_at_a_time(tiny_space):
    full = phase_space(tiny_space, Phase("full", 1, 0.1))
    assert full.size() == 1 and full.sample(np.random.default_rng(0)) == largest_arch(tiny_space)
    kernel = phase_space(tiny_space, Phase("k", 1, 0.1, ("kernel",)))
    assert {b.kernel for b in smallest_arch(kernel).blocks[1:]} == {3}
    assert smallest_arch(kernel).depths == largest_arch(tiny_space).depths
    assert {b.expand for b in smallest_arch(kernel).blocks[1:]} == {6}
    every = phase_space(tiny_space, Phase("all", 1, 0.1, ("kernel", "depth", "expand")))
    assert every.size() == tiny_space.size()


def test_sandwich_is_largest_smallest_then_random_and_reproducible(tiny_space):
    a = sandwich(tiny_space, np.random.default_rng(1), 2)
    assert a[0] == largest_arch(tiny_space) and a[1] == smallest_arch(tiny_space) and len(a) == 4
    assert a == sandwich(tiny_space, np.random.default_rng(1), 2)
    full = phase_space(tiny_space, Phase("full", 1, 0.1))
    assert sandwich(full, np.random.default_rng(1), 2) == [largest_arch(tiny_space)]


def test_lr_schedule_warmup_then_cosine_to_zero():
    phase = Phase("p", 10, 0.1, warmup_steps=2)
    assert lr_at(phase, 0) == pytest.approx(0.05) and lr_at(phase, 1) == pytest.approx(0.1)
    assert lr_at(phase, 2) == pytest.approx(0.1) and lr_at(phase, 6) == pytest.approx(0.05)
    assert lr_at(phase, 9) == pytest.approx(0.05 * (1 + math.cos(math.pi * 7 / 8)))


def test_kd_loss_is_zero_for_equal_logits_and_positive_otherwise():
    logits = torch.randn(4, 10)
    assert kd_loss(logits, logits, 2.0).abs().item() < 1e-6
    assert kd_loss(logits, torch.randn(4, 10), 2.0).item() > 0


# ---------------------------------------------------------------------- training and resume
def test_training_learns_resumes_exactly_and_extracts(tmp_path):
    straight = train_supernet(TrainConfig.from_dict(tiny_config(tmp_path / "a")), progress=False, log=lambda s: None)
    assert straight.finished and straight.step == 7
    assert [(h["phase"], h["arch"]) for h in straight.history] == [
        ("full", "max"), ("full", "min"), ("kernel", "max"), ("kernel", "min"), ("all", "max"), ("all", "min")]
    assert (tmp_path / "a" / "history.json").exists()

    config_b = TrainConfig.from_dict(tiny_config(tmp_path / "b"))
    messages: list[str] = []
    first = train_supernet(config_b, stop_after_steps=3, progress=False, log=messages.append)
    assert first.step == 3 and not first.finished
    assert load_checkpoint(first.checkpoint)["step"] == 3
    resumed = train_supernet(config_b, progress=False, log=messages.append)
    assert any("resuming" in m and "step 3/7" in m and "phase kernel" in m for m in messages)
    assert resumed.step == 7
    _assert_same_state(straight.supernet.state_dict(), resumed.supernet.state_dict())
    assert [h["val_acc"] for h in resumed.history] == [h["val_acc"] for h in straight.history]
    # the weights kept moving after the interruption
    assert not torch.equal(first.supernet.head.classifier.weight, resumed.supernet.head.classifier.weight)
    # the trained checkpoint reloads into an equivalent supernet
    loaded = supernet_from_checkpoint(resumed.checkpoint)
    _assert_same_state(loaded.state_dict(), resumed.supernet.state_dict())
    # rerunning a finished config does no more steps
    assert train_supernet(config_b, progress=False, log=messages.append).step == 7


def test_resume_with_a_changed_config_is_refused(tmp_path):
    train_supernet(TrainConfig.from_dict(tiny_config(tmp_path)), stop_after_steps=1, progress=False, log=lambda s: None)
    changed = tiny_config(tmp_path, seed=1)
    with pytest.raises(CheckpointError, match=r"different config \(differs in \['seed'\]\)"):
        train_supernet(TrainConfig.from_dict(changed), progress=False, log=lambda s: None)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign", "empty"])
def test_corrupt_checkpoint_is_a_clear_error_never_a_restart(tmp_path, damage):
    config = TrainConfig.from_dict(tiny_config(tmp_path))
    result = train_supernet(config, stop_after_steps=1, progress=False, log=lambda s: None)
    path = result.checkpoint
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match=str(path.name)) as err:
        train_supernet(config, progress=False, log=lambda s: None)
    assert isinstance(err.value, nas.HwnasError)
    assert path.read_bytes() != data  # left as it was for the user to inspect, not overwritten


def test_atomic_save_leaves_no_temporary_file(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"format": "x", "value": torch.ones(2)})
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    with pytest.raises(CheckpointError, match="not an hwnas supernet checkpoint"):
        load_checkpoint(tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


# ---------------------------------------------------------------------- CLI
def test_cli_train_then_extract_torch(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path / "out")))
    assert cli_main(["supernet", "train", "--config", str(config), "--steps", "2", "--quiet"]) == 0
    assert "stopped at step 2/7" in capsys.readouterr().out
    checkpoint = tmp_path / "out" / "checkpoint.pt"
    supernet = supernet_from_checkpoint(checkpoint)
    arch = supernet.space.sample(np.random.default_rng(3))
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(arch.to_json())
    out = tmp_path / "model.pt"
    assert cli_main(["extract", "--checkpoint", str(checkpoint), "--arch", str(arch_file), "--out", str(out)]) == 0
    net = load_extracted(out)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x), supernet(x, arch), rtol=0, atol=1e-5)
        torch.testing.assert_close(net(x), extract(supernet, arch)(x), rtol=0, atol=0)


def test_cli_reports_bad_config_in_one_line(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path / "out", sandwitch={})))
    assert cli_main(["supernet", "train", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "sandwitch: unknown key; allowed: [" in err and len(err.strip().splitlines()) == 1


def test_sigkill_mid_phase_then_rerun_resumes_from_the_last_checkpoint(tmp_path):
    """Kill the CLI with SIGKILL after a checkpoint, rerun: same final weights as an uninterrupted run."""
    cfg = tiny_config(tmp_path / "killed", checkpoint_every_steps=1,
                      phases=[{"name": "full", "steps": 2, "lr": 0.05},
                              {"name": "all", "steps": 12, "lr": 0.02, "elastic": ["kernel", "depth", "expand"]}])
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg))
    command = [sys.executable, "-m", "nas", "supernet", "train", "--config", str(config), "--threads", "1",
               "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    step = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if checkpoint.exists():
            step = load_checkpoint(checkpoint)["step"]
            if step >= 4:  # inside the second phase
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 4 <= step < 14, f"training did not reach the second phase before the kill (step {step})"
    killed_at = load_checkpoint(checkpoint)["step"]
    assert killed_at >= step
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming from {checkpoint} at step {killed_at}/14 (phase all" in rerun.stdout
    assert "finished at step 14/14" in rerun.stdout
    straight = train_supernet(TrainConfig.from_dict({**cfg, "output_dir": str(tmp_path / "straight")}),
                              progress=False, log=lambda s: None)
    _assert_same_state(supernet_from_checkpoint(checkpoint).state_dict(), straight.supernet.state_dict())


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained")
    train_supernet(TrainConfig.from_dict(tiny_config(out)), stop_after_steps=2, progress=False, log=lambda s: None)
    return out / "checkpoint.pt"


def _arch_file(tmp_path: Path, checkpoint: Path) -> tuple[nas.Arch, Path]:
    supernet = supernet_from_checkpoint(checkpoint)
    arch = supernet.space.sample(np.random.default_rng(5))
    path = tmp_path / "arch.json"
    path.write_text(arch.to_json())
    return arch, path


def test_cli_extract_onnx_runs_in_onnxruntime_and_matches_torch(tmp_path, trained_checkpoint):
    import onnxruntime as ort

    arch, arch_file = _arch_file(tmp_path, trained_checkpoint)
    out = tmp_path / "model.onnx"
    assert cli_main(["extract", "--checkpoint", str(trained_checkpoint), "--arch", str(arch_file),
                     "--format", "onnx", "--out", str(out), "--recalibrate-bn", "2"]) == 0
    x = torch.randn(1, 1, 32, 32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    # --recalibrate-bn gives the arch its own BN statistics: compare with the same recalibration in torch
    from nas.supernet import recalibrate_bn

    supernet, evaluator = checkpoint_evaluator(trained_checkpoint)
    net = recalibrate_bn(extract(supernet, arch), evaluator.calibration[:2], arch.resolution)
    with torch.no_grad():
        np.testing.assert_allclose(got, net(x).numpy(), rtol=0, atol=1e-4)
        assert np.abs(got - supernet(x, arch).numpy()).max() > 1e-4  # recalibration did change the stats


@pytest.mark.slow
def test_cli_extract_tflite_matches_torch(tmp_path, trained_checkpoint):
    from ai_edge_litert.interpreter import Interpreter

    arch, arch_file = _arch_file(tmp_path, trained_checkpoint)
    out = tmp_path / "model.tflite"
    assert cli_main(["extract", "--checkpoint", str(trained_checkpoint), "--arch", str(arch_file),
                     "--format", "tflite", "--out", str(out)]) == 0
    x = torch.randn(1, 1, 32, 32)
    interpreter = Interpreter(model_path=str(out), num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x.permute(0, 2, 3, 1).numpy())
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    with torch.no_grad():
        np.testing.assert_allclose(got, supernet_from_checkpoint(trained_checkpoint)(x, arch).numpy(), rtol=0, atol=1e-4)


def test_cli_sample_accuracy_appends_skips_done_archs_and_feeds_the_predictor(tmp_path, trained_checkpoint, capsys):
    import json

    samples = tmp_path / "samples.jsonl"
    base = ["supernet", "sample-accuracy", "--checkpoint", str(trained_checkpoint), "--out", str(samples),
            "--val-limit", "32"]
    assert cli_main(base + ["-n", "5"]) == 0
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(rows) == 5 and all(0.0 <= r["val_acc"] <= 1.0 for r in rows)
    assert cli_main(base + ["-n", "7"]) == 0  # the same seed: the first 5 archs are cached in the file
    assert "5 of 7 archs already in" in capsys.readouterr().err
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(rows) == 7 and len({json.dumps(r["arch"]) for r in rows}) == 7
    supernet = supernet_from_checkpoint(trained_checkpoint)
    assert rows[0]["encoding"] == supernet.space.encode(nas.Arch.from_dict(rows[0]["arch"]))
    predictor = tmp_path / "predictor.pt"
    assert cli_main(["supernet", "fit-predictor", "--samples", str(samples), "--checkpoint", str(trained_checkpoint),
                     "--out", str(predictor), "--epochs", "20"]) == 0
    out = capsys.readouterr().out
    assert "held-out RMSE" in out and "Kendall tau" in out and predictor.exists()


def test_elastic_resolution_phase_trains_subnets_at_every_resolution(tmp_path):
    config = tiny_config(tmp_path, space={"name": "ofa_mbv3", "resolutions": [24, 32], "width_mult": 0.5},
                         phases=[{"name": "full", "steps": 1, "lr": 0.05},
                                 {"name": "resolution", "steps": 2, "lr": 0.02,
                                  "elastic": ["kernel", "depth", "expand", "resolution"]}])
    result = train_supernet(TrainConfig.from_dict(config), progress=False, log=lambda s: None)
    space = result.supernet.space
    assert space.resolutions == (24, 32)
    full = phase_space(space, Phase("full", 1, 0.1))
    assert full.resolutions == (32,)
    archs = sandwich(phase_space(space, TrainConfig.from_dict(config).phases[1]), np.random.default_rng(0), 2)
    assert archs[0].resolution == 32 and archs[1].resolution == 24
    assert [h["arch"] for h in result.history if h["phase"] == "resolution"] == ["max", "min"]
