"""Four `nas search` workers on one PostgreSQL study, one SIGKILLed mid-trial and replaced.

Needs a server: set HWNAS_TEST_POSTGRES_URL (``.ci/run`` starts one on loopback and sets it), e.g.
``postgresql+psycopg2://hwnas:hwnas@127.0.0.1:5432/hwnas_test`` (SQLAlchemy 2.1 reads a bare
``postgresql://`` as psycopg 3, which is not installed). Each run uses a fresh study name and
deletes its study at the end, so reruns on one database do not collide.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import yaml

from nas.experiment import config_from_dict, open_storage, run_search

URL = os.environ.get("HWNAS_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="no PostgreSQL server: set HWNAS_TEST_POSTGRES_URL "
                                "(.ci/run starts one and sets it)")
ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "latency_tables" / "x86-2core_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv"
N_TRIALS = 60


def _config(tmp_path: Path, name: str) -> dict:
    """A shipped table and the (explicit) synthetic evaluator: the storage is what is under test."""
    return {"name": name, "run_dir": str(tmp_path / "run"), "seed": 0,
            "space": {"name": "ofa_mbv3", "resolutions": [28], "num_classes": 10, "in_channels": 1,
                      "width_mult": 0.5},
            "latency": {"tables": [{"path": str(TABLE), "name": "cpu-ort"}]},
            "evaluator": {"name": "synthetic"},
            "strategy": {"name": "evolution", "options": {"population": 8}},
            "search": {"n_trials": N_TRIALS, "progress": False, "storage": URL}}


def _worker(path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nas", "search", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _running_trial_of(study: optuna.Study, pid: int) -> int | None:
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if (t.user_attrs.get("worker") or {}).get("pid") == pid:
            return t.number
    return None


def test_four_workers_one_killed_mid_trial_on_postgres(tmp_path) -> None:
    name = f"pg{uuid.uuid4().hex[:10]}"
    raw = _config(tmp_path, name)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    run_search(config_from_dict(raw, ["search.n_trials=1"]))  # create the run folder and the study once
    storage = open_storage(URL)
    study_name = f"{name}.{config_from_dict(raw).strategies[0].key}"
    study = optuna.load_study(study_name=study_name, storage=storage)
    procs = [_worker(path) for _ in range(4)]
    try:
        killed_number, victim = None, None
        for attempt in range(5):  # a kill can land between two trials; then the replacement is the next victim
            candidate = procs[attempt]
            deadline = time.monotonic() + 120
            seen = None
            while seen is None and time.monotonic() < deadline and candidate.poll() is None:
                seen = _running_trial_of(study, candidate.pid)
            assert seen is not None, "the worker to kill never ran a trial"
            candidate.send_signal(signal.SIGKILL)
            candidate.wait()
            procs.append(_worker(path))  # the replacement fails the dead worker's trial and runs its slot
            left = _running_trial_of(study, candidate.pid)
            if left is not None:
                killed_number, victim = left, candidate
                break
        assert victim is not None, "no kill landed mid-trial in 5 tries"
        for p in procs:
            if p.returncode is None:
                _, err = p.communicate(timeout=300)
                assert p.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    try:
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert len(complete) == N_TRIALS
        assert not [t.number for t in trials if t.state == optuna.trial.TrialState.RUNNING]
        numbers = [t.number for t in trials]
        assert len(numbers) == len(set(numbers)), "a trial number was reused"
        killed = next(t for t in trials if t.number == killed_number)
        assert killed.state == optuna.trial.TrialState.FAIL, "the killed trial is failed, not completed or left"
        assert (killed.user_attrs.get("worker") or {}).get("pid") == victim.pid
        workers = {t.user_attrs["worker"]["pid"] for t in complete}
        assert len(workers) >= 3, "the workers really shared the study"
        assert all(t.user_attrs.get("fail_reason") == "over budget"
                   for t in trials if t.state == optuna.trial.TrialState.FAIL and t.number != killed_number)
    finally:
        optuna.delete_study(study_name=study_name, storage=storage)


def test_a_bare_postgresql_url_uses_the_installed_driver() -> None:
    """``postgresql://`` as the README's older form and most tools write it opens with psycopg2."""
    bare = "postgresql://" + URL.split("://", 1)[1]
    storage = open_storage(bare)
    name = f"pgbare{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(study_name=name, storage=storage)
    try:
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=1.0))
        assert len(optuna.load_study(study_name=name, storage=open_storage(bare)).trials) == 1
    finally:
        optuna.delete_study(study_name=name, storage=storage)
