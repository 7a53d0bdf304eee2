"""Behaviour lock: fixed-seed runs compared with a recorded fingerprint (tests/behaviour.json).

Refactors must not change what the product computes. Four things are locked:
- the trials (arch, accuracy, latency, reward) of 40-trial evolution, RL, TPE and NSGA-II searches on
  the shipped quickstart-space table (synthetic accuracy, so no weights are needed);
- the weights after 30 steps of supernet training (all three elastic phases);
- a 20-iteration ProxylessNAS search run through the experiment runner (derived arch, final α);
- the calibrated latency predictions of 10,000 archs.

On a machine whose kernels match the recording (CPU vendor/family/model and torch's kernel path), every
value must be equal bit for bit. Elsewhere float summation order may differ in the last bits, so the
floats are compared to a relative 1e-6 (weights: per-tensor norms to 1e-4) and the discrete choices
still exactly. A behaviour change on purpose is re-recorded with
``HWNAS_RECORD_BEHAVIOUR=1 .venv/bin/python -m pytest tests/test_behaviour.py`` and said in the commit.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import nas

RECORD = Path(__file__).with_name("behaviour.json")
ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "latency_tables" / "xeon-amx-2core_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv"
SPACE = {"name": "ofa_mbv3", "resolutions": [28], "num_classes": 10, "in_channels": 1, "width_mult": 0.5}
STRATEGIES = [{"name": "evolution", "options": {"population": 10}}, {"name": "rl", "options": {"batch": 5}},
              {"name": "tpe", "options": {"n_startup_trials": 10}}, {"name": "nsga2", "options": {"population": 10}}]


def _machine() -> dict[str, Any]:
    from nas._device._fingerprint import cpu_fingerprint

    cpu = cpu_fingerprint()["cpu"] or {}
    return {k: cpu.get(k) for k in ("vendor", "family", "model")} | {
        "kernels": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__, "numpy": np.__version__}


def _digest(values: Any) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------- the runs
def _searches(tmp: Path) -> dict[str, Any]:
    from nas.experiment import config_from_dict, run_search, trials_table

    raw = {"name": "lock", "run_dir": str(tmp / "search"), "seed": 0, "space": SPACE,
           "latency": {"tables": [{"path": str(TABLE), "name": "cpu"}], "budget_quantile": 0.4, "reward": "soft"},
           "evaluator": {"name": "synthetic"}, "strategies": STRATEGIES,
           "search": {"n_trials": 40, "progress": False, "storage": str(tmp / "search.journal")}}
    config = config_from_dict(raw)
    run_search(config)
    df = trials_table(config).sort_values(["strategy", "trial"])
    out = {}
    for key, part in df.groupby("strategy", sort=True):
        out[key] = {"arch": [_digest(a) for a in part["arch"]],
                    "floats": [[float(v) for v in row] for row in
                               part[["accuracy", "reward", "latency_ms[cpu]"]].to_numpy()]}
    return out


def _training(tmp: Path) -> dict[str, Any]:
    from nas.supernet import TrainConfig, train_supernet

    config = TrainConfig.from_dict({
        "seed": 0, "output_dir": str(tmp / "train"),
        "space": {"name": "ofa_mbv3", "resolutions": [28], "width_mult": 0.5},
        "data": {"dataset": "fashion_mnist_tiny", "batch_size": 16, "limit": 160},
        "eval": {"bn_batches": 1, "limit": 32, "batch_size": 32}, "checkpoint_every_steps": 100,
        "phases": [{"name": "full", "steps": 10, "lr": 0.05},
                   {"name": "kernel", "steps": 10, "lr": 0.02, "elastic": ["kernel"]},
                   {"name": "all", "steps": 10, "lr": 0.02, "elastic": ["kernel", "depth", "expand"],
                    "num_random": 1, "reorganize_channels": True}]})
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train_supernet(config, progress=False, log=lambda _: None)
    finally:
        torch.set_num_threads(before)
    state = result.supernet.state_dict()
    sha = hashlib.sha256()
    for name in sorted(state):
        sha.update(name.encode())
        sha.update(state[name].detach().contiguous().cpu().numpy().tobytes())
    norms = {name: float(t.double().norm()) for name, t in sorted(state.items()) if t.is_floating_point()}
    return {"steps": result.step, "sha256": sha.hexdigest()[:16], "floats": list(norms.values()),
            "history": [[h["arch"], float(h["val_acc"])] for h in result.history]}


def _proxyless(tmp: Path) -> dict[str, Any]:
    from nas.experiment import config_from_dict, run_search, trials_table

    raw = {"name": "lock_proxyless", "run_dir": str(tmp / "proxyless"), "seed": 0, "space": SPACE,
           "latency": {"tables": [{"path": str(TABLE), "name": "cpu"}], "target_ms": 0.2, "reward": "accuracy"},
           "evaluator": {"name": "synthetic"},
           "strategy": {"name": "proxyless", "options": {"steps": 20, "warmup_steps": 5, "batch_size": 8,
                                                         "dataset": "fashion_mnist_tiny", "log_every": 5,
                                                         "n_derived": 2}},
           "search": {"n_trials": 2, "progress": False, "storage": str(tmp / "proxyless.journal")}}
    config = config_from_dict(raw)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_search(config)
    finally:
        torch.set_num_threads(before)
    import optuna
    from nas.experiment import open_storage, storage_url

    df = trials_table(config).sort_values("trial")
    study = optuna.load_study(study_name=f"{config.name}.{config.strategies[0].key}",
                              storage=open_storage(storage_url(config)))
    meta = [t.user_attrs["record"]["proxyless"] for t in sorted(study.get_trials(), key=lambda t: t.number)]
    return {"arch": [_digest(a) for a in df["arch"]],
            "floats": [float(v) for v in df[["accuracy", "latency_ms[cpu]"]].to_numpy().ravel()]
            + [float(m[k]) for m in meta for k in ("predicted_ms", "expected_ms", "target_ms")]}


def _predictions() -> dict[str, Any]:
    from nas.latency import LatencyTable

    space = nas.load_space(SPACE["name"], **{k: v for k, v in SPACE.items() if k != "name"})
    table = LatencyTable.load(TABLE)
    rng = np.random.default_rng(2024)
    archs = [space.sample(rng) for _ in range(10_000)]
    ms = np.asarray(table.predict_many(archs, space), dtype=np.float64)
    rows = nas.Codec.of(space).encode_many(archs)
    return {"archs": hashlib.sha256(rows.astype(np.int64).tobytes()).hexdigest()[:16],
            "sha256": hashlib.sha256(ms.tobytes()).hexdigest()[:16], "floats": ms[::100].tolist(),
            "sum_ms": float(ms.sum())}


# ------------------------------------------------------------------------------------------- the check
@pytest.fixture(scope="module")
def behaviour(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import time

    tmp = tmp_path_factory.mktemp("behaviour")
    out = {}
    for name, run in (("searches", _searches), ("training", _training), ("proxyless", _proxyless),
                      ("predictions", lambda _: _predictions())):
        t0 = time.perf_counter()
        out[name] = run(tmp)
        print(f"{name}: {time.perf_counter() - t0:.1f} s")
    return out


def _close(a: Any, b: Any, rtol: float) -> bool:
    return np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=rtol, atol=0.0, equal_nan=True)


def test_behaviour_is_unchanged(behaviour: dict[str, Any]) -> None:
    now = {"machine": _machine(), **behaviour}
    if os.environ.get("HWNAS_RECORD_BEHAVIOUR") == "1":
        RECORD.write_text(json.dumps(now, indent=1) + "\n")
        pytest.fail(f"recorded {RECORD}; unset HWNAS_RECORD_BEHAVIOUR and rerun (a recording run never passes)")
    recorded = json.loads(RECORD.read_text())
    same_kernels = recorded["machine"] == now["machine"]
    for part in ("searches", "training", "proxyless", "predictions"):
        old, new = recorded[part], now[part]
        if same_kernels:
            assert new == old, f"{part} changed on the machine that recorded it (bit for bit)"
            continue
        # another CPU or library build: discrete results exactly, floats to the last few bits
        groups = [(old, new)] if part != "searches" else [(old[k], new.get(k, {})) for k in old]
        for o, n in groups:
            assert {k: v for k, v in n.items() if k not in ("floats", "sha256", "sum_ms")} == \
                   {k: v for k, v in o.items() if k not in ("floats", "sha256", "sum_ms")}, part
            rtol = 1e-4 if part == "training" else 1e-6
            assert _close(n["floats"], o["floats"], rtol), f"{part}: floats moved by more than {rtol:g}"
