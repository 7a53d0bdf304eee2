"""Chaos: SIGKILL search workers, a latency build and a supernet training at random points; nothing is lost.

    python experiments/benchmarks/chaos.py [--seed 0] [--kills 5] [--n-trials 120]
        [--only search latency supernet] [--out experiments/benchmarks/chaos.csv]

Search: for each storage (SQLite, journal file, PostgreSQL at $HWNAS_TEST_POSTGRES_URL; skipped with
the reason printed when unset) 4 `nas search` workers share one study; each time the study's
complete count passes one of `--kills` random thresholds, a random live worker gets SIGKILL and a
replacement starts at once. Checks: exactly n_trials COMPLETE, nothing RUNNING, trial numbers
0..n-1 each once, `nas results` prints the same twice, no worker process left. The evaluator is
the (explicit) synthetic one and latency comes from a shipped table: the storage is under test.

Latency: `nas latency build` of ofa_mbv3 at 28 px (width 0.5, 10 classes, 1 channel, ONNX Runtime,
--no-canaries) SIGKILLed (the `nas` process only, as a user's kill) at `--kills` random points (one
in start-up/export, the others at random rows of the first passes) and resumed each time; a clean
build before and one after show the machine's noise. Reported: flagged entries of each, and any
`nas._device._runner` process alive 5 s after a kill (an orphan).

Search workers left RUNNING at the end (a worker killed between asking for a trial and naming itself
leaves one that the runner fails only when a worker starts 30 s later) are reported, then one more
restart past that limit is run and what it leaves is reported too (`running_after_sweep`).

Supernet: a tiny config (fashion_mnist_tiny) trained straight, and trained again SIGKILLed at 3
random steps and resumed, both with --threads 1: SHA-256 of the final state dicts, largest |diff|.

Prints a table, writes a CSV. About 5-10 min on 2 shared cores.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import optuna
import yaml

from _results import write_csv

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "latency_tables" / "x86-2core_onnxruntime_t1_ofa_mbv3_r28_w0.5.csv"
SPACE_ARGS = ["--space", "ofa_mbv3", "--resolutions", "28", "--num-classes", "10", "--in-channels", "1",
              "--width-mult", "0.5", "--backend", "onnxruntime", "--threads", "1", "--no-canaries", "--quiet"]
NAS = [sys.executable, "-m", "nas"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
COLUMNS = ["scenario", "storage", "kills", "kills_mid_work", "restarts", "n_trials", "complete", "failed",
           "running_left", "running_after_sweep",
           "numbers_ok", "trials_lost", "results_identical", "orphans", "flagged_clean_before",
           "flagged_clean_after", "flagged_after_kills", "entries", "weights_equal", "max_abs_diff", "seconds", "note"]


def _alive_pids(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line contains `marker`."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmd and state not in ("Z", "X"):
            pids.append(int(proc.name))
    return pids


def _wait(cond: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


# ------------------------------------------------------------------------------------------ search
def _search_config(folder: Path, kind: str, url: str | None, n_trials: int) -> tuple[dict, Path]:
    storage = {"sqlite": None, "journal": str(folder / "study.journal"), "postgresql": url}[kind]
    raw = {"name": f"chaos_{kind}_{uuid.uuid4().hex[:8]}", "run_dir": str(folder / "run"), "seed": 0,
           "space": {"name": "ofa_mbv3", "resolutions": [28], "num_classes": 10, "in_channels": 1, "width_mult": 0.5},
           "latency": {"tables": [{"path": str(TABLE), "name": "cpu-ort"}]},
           "evaluator": {"name": "synthetic"},
           "strategy": {"name": "evolution", "options": {"population": 8}},
           "search": {"n_trials": n_trials, "progress": False, "storage": storage}}
    path = folder / "chaos.yaml"
    path.write_text(yaml.safe_dump(raw))
    return raw, path


def _study(raw: dict) -> tuple[optuna.Study, Any]:
    from nas.experiment import config_from_dict, open_storage, storage_url

    config = config_from_dict(raw)
    storage = open_storage(storage_url(config))
    name = f"{config.name}.{config.strategies[0].key}"
    return optuna.load_study(study_name=name, storage=storage), storage


def _age(trial: optuna.trial.FrozenTrial) -> float:
    import datetime as dt

    return (dt.datetime.now() - trial.datetime_start).total_seconds() if trial.datetime_start else 0.0


def _states(study: optuna.Study) -> dict[str, int]:
    counts = {"COMPLETE": 0, "RUNNING": 0, "FAIL": 0}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def search_chaos(kind: str, url: str | None, folder: Path, n_trials: int, kills: int, rng: random.Random) -> dict:
    started = time.perf_counter()
    folder.mkdir(parents=True)
    raw, path = _search_config(folder, kind, url, n_trials)
    worker = NAS + ["search", "--config", str(path), "--quiet"]
    first = subprocess.run(worker + ["--set", "search.n_trials=1"], capture_output=True, text=True, env=ENV)
    if first.returncode != 0:
        raise RuntimeError(f"{kind}: the first worker failed: {first.stderr.strip()[-500:]}")
    study, storage = _study(raw)
    spawn = lambda: subprocess.Popen(worker, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)  # noqa: E731
    procs = [spawn() for _ in range(4)]
    thresholds = sorted(rng.sample(range(n_trials // 10, n_trials * 8 // 10), kills))
    done_kills = mid = restarts = 0
    for threshold in thresholds:
        if not _wait(lambda: _states(study)["COMPLETE"] >= threshold or all(p.poll() is not None for p in procs), 300, 0.1):
            break
        live = [p for p in procs if p.poll() is None]
        if not live:
            break
        busy = {(t.user_attrs.get("worker") or {}).get("pid")
                for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
        victim = rng.choice([p for p in live if p.pid in busy] or live)  # mid-trial when one is in a trial
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        done_kills += 1
        mid += any((t.user_attrs.get("worker") or {}).get("pid") == victim.pid
                   for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))
        procs.append(spawn())
        restarts += 1
    errors = []
    for p in procs:
        if p.returncode is None:
            _, err = p.communicate(timeout=600)
            if p.returncode != 0:
                errors.append(err.strip().splitlines()[-1:] or [f"exit {p.returncode}"])
    left = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING]
    notes = [f"left RUNNING: #{t.number} " + (f"of dead worker {t.user_attrs['worker']['pid']}"
                                            if "worker" in t.user_attrs else "ownerless (killed between ask and naming its worker)")
             for t in left]
    swept = len(left)
    if left:  # one more restart once they are past the runner's 30 s ownerless limit
        time.sleep(max(0.0, 31 - min(_age(t) for t in left)))
        sweep = subprocess.run(worker, capture_output=True, text=True, env=ENV)
        restarts += 1
        notes.append(f"a restart {31}+ s later (exit {sweep.returncode}) left "
                     f"{_states(study)['RUNNING']} RUNNING")
        swept = _states(study)["RUNNING"]
    trials = study.get_trials(deepcopy=False)
    counts = _states(study)
    numbers = sorted(t.number for t in trials)
    results = [subprocess.run(NAS + ["results", raw["run_dir"]], capture_output=True, text=True, env=ENV)
               for _ in range(2)]
    orphans = len(_alive_pids(str(path)))
    note = "; ".join([e[0] for e in errors] + notes)
    if kind == "postgresql":
        optuna.delete_study(study_name=study.study_name, storage=storage)
    return {"scenario": "search", "storage": kind, "kills": done_kills, "kills_mid_work": mid, "restarts": restarts,
            "n_trials": n_trials, "complete": counts["COMPLETE"], "failed": counts["FAIL"],
            "running_left": len(left), "running_after_sweep": swept, "numbers_ok": int(numbers == list(range(len(trials)))),
            "trials_lost": n_trials - counts["COMPLETE"],
            "results_identical": int(results[0].returncode == 0 and results[0].stdout == results[1].stdout),
            "orphans": orphans, "seconds": round(time.perf_counter() - started, 1), "note": note}


# ----------------------------------------------------------------------------------------- latency
def _pass_lines(work: Path) -> str:
    files = sorted((work / "passes").glob("*.jsonl")) if (work / "passes").is_dir() else []
    return " ".join(f"{f.stem}:{len(f.read_text().splitlines())}" for f in files) or "export"


def _rows_done(work: Path) -> int:
    """Rows of the first passes written so far (what a kill point is drawn over)."""
    files = sorted((work / "passes").glob("p*.jsonl")) if (work / "passes").is_dir() else []
    try:
        return sum(len(f.read_text().splitlines()) for f in files)
    except OSError:
        return 0


def _flagged(out: Path) -> tuple[int, int]:
    from nas.latency import LatencyTable

    table = LatencyTable.load(out)
    return int(table.summary()["flagged"]), len(table)


def _clean_build(out: Path) -> float:
    t0 = time.perf_counter()
    run = subprocess.run(NAS + ["latency", "build", *SPACE_ARGS, "--out", str(out)], capture_output=True,
                         text=True, env=ENV)
    if run.returncode != 0:
        raise RuntimeError(f"clean latency build failed: {run.stderr.strip()[-500:]}")
    return time.perf_counter() - t0


def latency_chaos(folder: Path, kills: int, rng: random.Random) -> dict:
    """A clean build before and after the killed one, so the flagged counts show the machine's noise."""
    started = time.perf_counter()
    folder.mkdir(parents=True)
    out = folder / "chaos.csv"
    clean_s = _clean_build(folder / "clean1.csv")
    work = out.with_name(out.name + ".work")
    cmd = NAS + ["latency", "build", *SPACE_ARGS, "--out", str(out)]
    entries = _flagged(folder / "clean1.csv")[1]
    total_rows = 3 * entries
    # kill points: one during start-up/export (rows 0), the others spread over the first passes
    targets = [0] + sorted(rng.sample(range(1, total_rows - 5), kills - 1))
    done_kills = orphans = mid = restarts = 0
    points = []
    for target in targets:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV,
                                start_new_session=True)
        if target == 0:
            _wait(lambda: proc.poll() is not None, rng.uniform(0.5, 3.0))
        else:
            _wait(lambda: proc.poll() is not None or _rows_done(work) >= target, 600, 0.02)
        if proc.poll() is not None:
            break  # finished before this kill
        points.append(_pass_lines(work))
        mid += bool(_alive_pids(f"nas._device._runner {work}"))
        os.kill(proc.pid, signal.SIGKILL)  # the build only: its pass worker must follow by itself
        proc.wait()
        done_kills += 1
        if not _wait(lambda: not _alive_pids(f"nas._device._runner {work}"), 5):
            orphans += len(_alive_pids(f"nas._device._runner {work}"))
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # clean up, so the next attempt measures alone
            except ProcessLookupError:
                pass
        restarts += 1
    final = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if final.returncode != 0:
        raise RuntimeError(f"resumed latency build failed: {final.stderr.strip()[-500:]}")
    orphans += len(_alive_pids(str(work)))
    _clean_build(folder / "clean2.csv")
    flagged_clean = [_flagged(folder / f"clean{i}.csv")[0] for i in (1, 2)]
    flagged_chaos, _ = _flagged(out)
    return {"scenario": "latency build", "storage": "-", "kills": done_kills, "kills_mid_work": mid,
            "restarts": restarts, "orphans": orphans, "flagged_clean_before": flagged_clean[0],
            "flagged_clean_after": flagged_clean[1],
            "flagged_after_kills": flagged_chaos, "entries": entries,
            "seconds": round(time.perf_counter() - started, 1),
            "note": f"clean build {clean_s:.0f} s; killed at (pass:rows) " + " | ".join(points)}


# ---------------------------------------------------------------------------------------- supernet
def _supernet_config(out: Path) -> dict:
    return {"seed": 0, "output_dir": str(out),
            "space": {"name": "ofa_mbv3", "resolutions": [28], "width_mult": 0.5},
            "data": {"dataset": "fashion_mnist_tiny", "batch_size": 16, "limit": 128},
            "eval": {"bn_batches": 1, "limit": 32, "batch_size": 32},
            "checkpoint_every_steps": 2,
            "phases": [{"name": "full", "steps": 10, "lr": 0.05},
                       {"name": "kernel", "steps": 6, "lr": 0.02, "elastic": ["kernel"]},
                       {"name": "all", "steps": 14, "lr": 0.02, "elastic": ["kernel", "depth", "expand"],
                        "num_random": 1, "reorganize_channels": True}]}


def _state(checkpoint: Path) -> tuple[str, dict]:
    from nas.supernet import supernet_from_checkpoint

    state = supernet_from_checkpoint(checkpoint).state_dict()
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest(), state


def supernet_chaos(folder: Path, kills: int, rng: random.Random) -> dict:
    from nas.supernet import load_checkpoint

    started = time.perf_counter()
    folder.mkdir(parents=True)
    configs = {}
    for name in ("straight", "killed"):
        configs[name] = folder / f"{name}.yaml"
        configs[name].write_text(yaml.safe_dump(_supernet_config(folder / name)))
    train = lambda name: NAS + ["supernet", "train", "--config", str(configs[name]), "--threads", "1", "--quiet"]  # noqa: E731
    straight = subprocess.run(train("straight"), capture_output=True, text=True, env=ENV)
    if straight.returncode != 0:
        raise RuntimeError(f"supernet training failed: {straight.stderr.strip()[-500:]}")
    total = sum(p["steps"] for p in _supernet_config(folder)["phases"])
    checkpoint = folder / "killed" / "checkpoint.pt"
    every = _supernet_config(folder)["checkpoint_every_steps"]  # distinct checkpoints, none the last
    targets = sorted(every * k for k in rng.sample(range(1, total // every), kills))
    done_kills = restarts = 0
    points = []
    step_now = lambda: load_checkpoint(checkpoint)["step"] if checkpoint.exists() else 0  # noqa: E731
    for target in targets:
        target = max(target, _safe(step_now) + every)  # each kill after a checkpoint this run wrote
        if target >= total:
            break
        proc = subprocess.Popen(train("killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        if not _wait(lambda: proc.poll() is not None or _safe(step_now) >= target, 300, 0.02):
            raise RuntimeError("supernet training made no progress")
        if proc.poll() is not None:
            break
        time.sleep(rng.uniform(0.0, 0.5))  # anywhere between checkpoints, or in the middle of writing one
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_kills += 1
        restarts += 1
        points.append(str(_safe(step_now)))
    final = subprocess.run(train("killed"), capture_output=True, text=True, env=ENV)
    if final.returncode != 0:
        raise RuntimeError(f"resumed supernet training failed: {final.stderr.strip()[-500:]}")
    (h_straight, a), (h_killed, b) = _state(folder / "straight" / "checkpoint.pt"), _state(checkpoint)
    diff = max(((a[k].double() - b[k].double()).abs().max().item() if a[k].numel() else 0.0) for k in a)
    return {"scenario": "supernet train", "storage": "-", "kills": done_kills, "restarts": restarts,
            "weights_equal": int(h_straight == h_killed), "max_abs_diff": diff,
            "seconds": round(time.perf_counter() - started, 1),
            "note": f"{total} steps; checkpoint step at each kill: {', '.join(points)}; "
                    f"sha256 {h_killed[:12]} vs straight {h_straight[:12]}"}


def _safe(fn: Callable[[], int]) -> int:
    """A checkpoint being replaced can be unreadable for a moment: read it as 'no progress yet'."""
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kills", type=int, default=5, help="kills per storage and for the latency build (>= 5)")
    ap.add_argument("--supernet-kills", type=int, default=3)
    ap.add_argument("--n-trials", type=int, default=120)
    ap.add_argument("--only", nargs="+", default=["search", "latency", "supernet"],
                    choices=["search", "latency", "supernet"])
    ap.add_argument("--out", default=str(Path(__file__).with_name("chaos.csv")))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    url = os.environ.get("HWNAS_TEST_POSTGRES_URL")
    rows: list[dict] = []
    tmp = Path(tempfile.mkdtemp(prefix="hwnas-chaos-"))
    try:
        if "search" in args.only:
            for kind in ("sqlite", "journal", "postgresql"):
                if kind == "postgresql" and not url:
                    print("postgresql: skipped: set HWNAS_TEST_POSTGRES_URL (.ci/run starts a server and sets it)")
                    continue
                rows.append(search_chaos(kind, url, tmp / kind, args.n_trials, args.kills, rng))
                print(rows[-1], flush=True)
        if "latency" in args.only:
            rows.append(latency_chaos(tmp / "latency", args.kills, rng))
            print(rows[-1], flush=True)
        if "supernet" in args.only:
            rows.append(supernet_chaos(tmp / "supernet", args.supernet_kills, rng))
            print(rows[-1], flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [{c: r.get(c, "") for c in COLUMNS} for r in rows]
    import pandas as pd

    print(pd.DataFrame(rows).drop(columns=["note"]).to_string(index=False))
    for r in rows:
        print(f"{r['scenario']} {r['storage']}: {r['note']}")
    write_csv(rows, args.out, COLUMNS)


if __name__ == "__main__":
    main()
