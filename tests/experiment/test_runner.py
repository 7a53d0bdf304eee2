"""Runner reliability: persisted trials, resume after SIGKILL, 4 workers on one study, clear errors."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml

import nas
from nas.experiment import (
    ConfigError,
    config_from_dict,
    fail_stale_trials,
    heartbeat,
    load_config,
    report,
    run_search,
    trials_table,
)

SPACE = {"name": "ofa_mbv3", "resolutions": [32], "num_classes": 10, "in_channels": 1}


def _config(tmp_path: Path, **over) -> dict:
    """A search on the explicit stand-ins (MACs proxy, synthetic accuracy); `latency` merges."""
    raw = {"name": "t", "run_dir": str(tmp_path / "run"), "seed": 0, "space": SPACE,
           "latency": {"tables": [{"path": "macs-proxy"}]}, "evaluator": {"name": "synthetic"},
           "strategy": {"name": "evolution", "options": {"population": 8}},
           "search": {"n_trials": 20, "progress": False}}
    raw["latency"].update(over.pop("latency", {}))
    raw.update(over)
    return raw


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nas", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def _study(raw: dict, storage: str | None = None) -> optuna.Study:
    from nas.experiment import open_storage, storage_url

    config = config_from_dict(raw)
    return optuna.load_study(study_name=f"{config.name}.{config.strategies[0].key}",
                             storage=open_storage(storage or storage_url(config)))


def test_trials_are_persisted_and_rerun_resumes(tmp_path) -> None:
    raw = _config(tmp_path)
    run_search(config_from_dict(raw))
    first = trials_table(config_from_dict(raw))
    assert (first.state == "COMPLETE").sum() == 20
    assert {"accuracy", "latency_ms[macs-proxy]", "arch", "worker", "eval_seconds"} <= set(first.columns)
    for text in first.arch:
        assert nas.load_space(**{k: v for k, v in SPACE.items() if k != "name"}, name_or_path="ofa_mbv3").contains(
            nas.Arch.from_json(text))
    run_search(config_from_dict(raw, ["search.n_trials=30"]))  # more trials: continue the same study
    second = trials_table(config_from_dict(raw))
    assert (second.state == "COMPLETE").sum() == 30
    assert list(second.arch[:20]) == list(first.arch)  # completed trials kept as they were
    for name in ("config.yaml", "meta.json", "presets.json", "study.db"):
        assert (tmp_path / "run" / name).is_file()


def test_changed_experiment_in_same_run_dir_names_the_keys(tmp_path) -> None:
    raw = _config(tmp_path, search={"n_trials": 3, "progress": False})
    run_search(config_from_dict(raw))
    with pytest.raises(ConfigError, match=r"seed"):
        run_search(config_from_dict(raw, ["seed=5"]))


def _completed_read_only(db: Path) -> int:
    """COMPLETE trials in a SQLite study, read without creating or migrating anything (the search
    under test owns the file)."""
    import sqlite3

    if not db.is_file():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def test_sigkill_then_rerun_keeps_completed_trials(tmp_path) -> None:
    raw = _config(tmp_path, search={"n_trials": 400, "progress": False})
    path = _write(tmp_path, raw)
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "nas", "search", "--config", str(path)],
                                stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and _completed_read_only(tmp_path / "run" / "study.db") < 10:
        time.sleep(0.2)
    assert proc.poll() is None, f"search exited early ({proc.returncode}): {(tmp_path / 'stderr.txt').read_text()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: t.user_attrs["arch"] for t in _study(raw).get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
    assert len(before) >= 10 and len(before) < 400
    out = _cli("search", "--config", str(path), "--set", "search.n_trials=" + str(len(before) + 5))
    stdout, stderr = out.communicate(timeout=120)
    assert out.returncode == 0, stderr
    after = _study(raw).get_trials()
    complete = {t.number: t.user_attrs["arch"] for t in after if t.state == optuna.trial.TrialState.COMPLETE}
    assert len(complete) == len(before) + 5
    assert all(complete[n] == a for n, a in before.items())
    # the killed trial was failed, or (killed between ask and naming its worker) is left out of the count
    assert all("worker" not in t.user_attrs for t in after if t.state == optuna.trial.TrialState.RUNNING)


@pytest.mark.parametrize("storage", ["sqlite", pytest.param("journal", marks=pytest.mark.slow)])
def test_four_workers_share_one_study(tmp_path, storage) -> None:
    url = None if storage == "sqlite" else str(tmp_path / "study.journal")
    raw = _config(tmp_path, search={"n_trials": 24, "progress": False, "storage": url})
    path = _write(tmp_path, raw)
    procs = [_cli("search", "--config", str(path)) for _ in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    trials = _study(raw, url).get_trials()
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 24
    assert len({t.number for t in complete}) == 24
    assert all(t.user_attrs.get("fail_reason") == "over budget" for t in trials if t.state.name == "FAIL")
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    workers = {t.user_attrs["worker"]["pid"] for t in complete}
    assert len(workers) >= 2  # they really shared the work


def test_workers_started_together_create_one_storage(tmp_path) -> None:
    """Workers launched at once race to create a fresh SQLite study's tables: none may fail."""
    from concurrent.futures import ThreadPoolExecutor

    from nas.experiment import open_storage

    for round_ in range(3):
        url = f"sqlite:///{tmp_path / f'study{round_}.db'}"
        start = threading.Barrier(6)

        def open_one(_: int) -> str:
            start.wait()
            return type(open_storage(url)).__name__

        with ThreadPoolExecutor(6) as pool:
            assert list(pool.map(open_one, range(6))) == ["RDBStorage"] * 6


def test_infeasible_budget_is_a_one_line_error(tmp_path) -> None:
    path = _write(tmp_path, _config(tmp_path, latency={"budget_ms": 1e-4}))
    p = _cli("search", "--config", str(path))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2
    lines = [line for line in err.strip().splitlines() if line.strip() and not line.startswith("nas: warning:")]
    assert len(lines) == 1 and "no arch in this space meets 0.0001 ms on macs-proxy" in lines[0], err


def test_unknown_config_key_is_named(tmp_path) -> None:
    path = _write(tmp_path, _config(tmp_path, search={"n_trails": 3}))
    with pytest.raises(ConfigError, match=r"search\.n_trails"):
        load_config(path)
    p = _cli("search", "--config", str(path))
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "search.n_trails" in err


def test_table_missing_space_keys_names_them(tmp_path) -> None:
    latency = pytest.importorskip("nas.latency")
    small = nas.load_space("ofa_mbv3", resolutions=[32], num_classes=10, in_channels=1).restrict(kernel=[3], expand=[3])
    stats = {"latency_ms": 0.1, "mean_ms": 0.1, "std_ms": 0.0, "p90_ms": 0.1, "count": 1, "passes": 3,
             "spread_pct": 0.0, "remeasured": 0, "flagged": 0}
    table = latency.LatencyTable({k: stats for k in small.all_block_keys()},
                                 {"backend": "onnxruntime", "backend_version": "x", "threads": 1,
                                  "device_name": "test", "protocol": {}})
    table.save(tmp_path / "small.csv")
    raw = _config(tmp_path, latency={"tables": [{"path": str(tmp_path / "small.csv")}]})
    with pytest.raises(nas.HwnasError, match=r"missing layer\(s\): .*k[57]"):
        run_search(config_from_dict(raw))


def test_results_table_plot_and_export(tmp_path) -> None:
    raw = _config(tmp_path, strategies=[{"name": "random"}, {"name": "evolution", "options": {"population": 8}}],
                  search={"n_trials": 16, "progress": False}, latency={"budget_ms": 10.0})
    raw.pop("strategy")
    run_search(config_from_dict(raw))
    rep = report(tmp_path / "run", export_best=tmp_path / "best.json")
    assert set(rep.trials.strategy) == {"random", "evolution"} and len(rep.trials) == 32
    assert rep.plot_path.stat().st_size > 10_000
    assert set(rep.hypervolume.strategy) == {"random", "evolution"}
    best = nas.Arch.from_json((tmp_path / "best.json").read_text())
    done = rep.trials[rep.trials.state == "COMPLETE"]
    assert best.to_json() in {nas.Arch.from_json(a).to_json() for a in done.arch}
    row = done[[nas.Arch.from_json(a) == best for a in done.arch]].iloc[0]
    assert row.accuracy == done.accuracy.max() and row["latency_ms[macs-proxy]"] <= 10.0
    p = _cli("model", "summary", str(tmp_path / "best.json"), "--num-classes", "10", "--in-channels", "1")
    assert p.wait(timeout=60) == 0


def test_deriving_strategy_records_trials(tmp_path, monkeypatch) -> None:
    """A strategy outside ask/tell (like ProxylessNAS) is registered by name; the runner builds it from
    the resolved objective, evaluates each arch it derives and stores it as a completed trial."""
    from nas.experiment import _config as experiment_config

    built = {}

    class OneShot:
        name = "oneshot"

        def __init__(self, space):
            self.space = space

        @staticmethod
        def check_options(options, where):
            built["checked"] = (dict(options), where)

        @classmethod
        def build(cls, space, tables, objective, options, *, seed, n_derived):
            built.update(objective=objective, n_derived=n_derived)
            return cls(space)

        def derive(self, progress=True):
            return [(self.space.preset("ofa_min", 32), {"derived_from": "alpha argmax"})]

    monkeypatch.setitem(experiment_config.DERIVING_STRATEGIES, "oneshot", OneShot)
    raw = _config(tmp_path, strategy={"name": "oneshot"})
    (rep,) = run_search(config_from_dict(raw))
    assert rep.completed_here == 1
    df = trials_table(config_from_dict(raw))
    space = nas.load_space("ofa_mbv3", resolutions=[32], num_classes=10, in_channels=1)
    assert nas.Arch.from_json(df.arch[0]) == space.preset("ofa_min", 32)
    assert (df.state == "COMPLETE").all()
    assert built["n_derived"] == 20 and built["objective"].table == "macs-proxy"
    assert built["checked"] == ({}, "strategy.options")


def test_proxyless_records_its_derived_archs_and_a_rerun_adds_none(tmp_path) -> None:
    table = Path(__file__).resolve().parents[2] / "latency_tables" / "x86-2core_onnxruntime_t1_ofa_mbv3_r32.csv"
    options = {"steps": 4, "warmup_steps": 2, "batch_size": 8, "dataset": "fashion_mnist_tiny"}
    raw = _config(tmp_path, strategy={"name": "proxyless", "options": options},
                  latency={"tables": [{"path": str(table), "name": "cpu-ort"}], "target_ms": 0.5},
                  search={"n_trials": 2, "progress": False})
    (rep,) = run_search(config_from_dict(raw))
    df = trials_table(config_from_dict(raw))
    assert rep.completed_here == len(df) >= 1 and (df.state == "COMPLETE").all()
    space = nas.load_space("ofa_mbv3", resolutions=[32], num_classes=10, in_channels=1)
    assert all(space.contains(nas.Arch.from_json(a)) for a in df.arch)
    (again,) = run_search(config_from_dict(raw))
    assert again.completed_here == 0 and len(trials_table(config_from_dict(raw))) == len(df)
    macs_only = _config(tmp_path / "macs", strategy={"name": "proxyless", "options": options},
                        latency={"target_ms": 0.5})
    with pytest.raises(ConfigError, match="needs a latency table"):
        run_search(config_from_dict(macs_only))
    assert not (tmp_path / "macs").exists()  # checked before the run folder is made


def test_proxyless_takes_its_target_from_a_budget_quantile(tmp_path) -> None:
    """ProxylessNAS gets T from the experiment's resolved objective: a budget_quantile works (it used
    to end in "needs a positive target_ms") and T is the budget written to meta.json."""
    import optuna

    from nas.experiment import open_storage, storage_url

    table = Path(__file__).resolve().parents[2] / "latency_tables" / "x86-2core_onnxruntime_t1_ofa_mbv3_r32.csv"
    options = {"steps": 3, "warmup_steps": 1, "batch_size": 8, "dataset": "fashion_mnist_tiny"}
    raw = _config(tmp_path, strategy={"name": "proxyless", "options": options},
                  latency={"tables": [{"path": str(table), "name": "cpu-ort"}], "budget_quantile": 0.4},
                  search={"n_trials": 1, "progress": False})
    config = config_from_dict(raw)
    run_search(config)
    budget_ms = json.loads((Path(config.run_dir) / "meta.json").read_text())["budget_ms"]
    study = optuna.load_study(study_name="t.proxyless", storage=open_storage(storage_url(config)))
    (trial,) = study.get_trials()
    record = trial.user_attrs["record"]["proxyless"]
    assert budget_ms > 0 and record["target_ms"] == budget_ms
    assert record["derive"] == "target" and {"argmax_ms", "logp_given_up", "flips"} <= set(record["derivation"])


def test_budget_quantile_is_resolved_once_and_respected(tmp_path) -> None:
    raw = _config(tmp_path, latency={"budget_quantile": 0.3}, search={"n_trials": 10, "progress": False})
    run_search(config_from_dict(raw))
    import json

    budget = json.loads((tmp_path / "run" / "meta.json").read_text())["budget_ms"]
    df = trials_table(config_from_dict(raw))
    assert budget > 0 and (df["latency_ms[macs-proxy]"] <= budget).all()
    rep = report(tmp_path / "run")
    assert list(rep.best[rep.best.table == "macs-proxy"].budget_ms)[0] == budget
    # the MobileNetV2-style baseline: the slowest member of its family that fits the same budget
    base = rep.presets["mobilenetv2_style (scaled)"]
    space = nas.load_space("ofa_mbv3", **{k: v for k, v in SPACE.items() if k != "name"})
    members = space.preset_family("mobilenetv2_style")
    latency = {m: nas.evaluators.MacsProxy(space).predict_many([m])[0] for m in members}
    fitting = [m for m in members if latency[m] <= budget]
    assert nas.Arch.from_dict(base["arch"]) == max(fitting, key=latency.get)
    assert base["result"]["latency_ms"]["macs-proxy"] <= budget == base["scaled_to_ms"]
    with pytest.raises(ConfigError, match="not both"):
        run_search(config_from_dict(raw, ["latency.budget_ms=3.0"]))


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning", "ignore:Heartbeat of storage")
def test_heartbeat_fails_trials_of_dead_workers_on_other_hosts(tmp_path) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'hb.db'}", heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    dead, alive = study.ask(), study.ask()
    for t in (dead, alive):  # another machine: the pid rule cannot judge these
        t.set_user_attr("worker", {"host": "some-other-machine", "pid": 1})
    dead_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name),
                                                              dead.number)
    storage.record_heartbeat(dead_id)  # then the process died
    with heartbeat(storage, study, alive):
        time.sleep(3.5)
        assert fail_stale_trials(storage, study) == 1
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {dead.number: optuna.trial.TrialState.FAIL, alive.number: optuna.trial.TrialState.RUNNING}


def test_seeds_run_every_strategy_again_and_results_carry_error_bars(tmp_path) -> None:
    raw = _config(tmp_path, strategies=[{"name": "random"}, {"name": "evolution", "options": {"population": 6}}],
                  search={"n_trials": 12, "progress": False})
    raw.pop("strategy")
    run_search(config_from_dict(raw))
    first = trials_table(config_from_dict(raw))
    assert set(first.seed) == {1}
    run_search(config_from_dict(raw, ["search.seeds=3"]))  # two more runs per strategy, same run folder
    df = trials_table(config_from_dict(raw, ["search.seeds=3"]))
    assert df.groupby(["strategy", "seed"]).size().to_dict() == {(s, r): 12 for s in ("random", "evolution")
                                                                  for r in (1, 2, 3)}
    again = df[df.seed == 1].reset_index(drop=True)
    assert list(again.arch) == list(first.arch)  # the first seed's studies are the single-seed run's
    archs = {r: tuple(df[(df.strategy == "random") & (df.seed == r)].arch) for r in (1, 2, 3)}
    assert len(set(archs.values())) == 3  # each seed its own draws
    rep = report(config_from_dict(raw, ["search.seeds=3"]).run_dir)
    assert len(rep.hypervolume) == 6 and set(rep.hypervolume.seed) == {1, 2, 3}
    summary = rep.hypervolume_summary.set_index("strategy")
    evo = summary.loc["evolution"]
    hv = rep.hypervolume.set_index(["strategy", "seed"]).hypervolume
    assert evo.seeds == 3 and evo.hypervolume_mean == pytest.approx(hv["evolution"].mean())
    assert evo.hypervolume_std == pytest.approx(hv["evolution"].std(ddof=1))
    wins = sum(hv["evolution", r] > hv["random", r] for r in (1, 2, 3))
    assert evo.beats_random == f"{wins}/3"
    assert evo.vs_random_mean == pytest.approx((hv["evolution"] - hv["random"]).mean())
    assert (tmp_path / "run" / "hypervolume_summary.csv").is_file()
    with pytest.raises(ConfigError, match=r"search\.seeds must be >= 1"):
        config_from_dict(raw, ["search.seeds=0"])


def test_results_verify_names_what_it_cannot_do(tmp_path, capsys) -> None:
    from nas.cli import main

    raw = _config(tmp_path, search={"n_trials": 6, "progress": False})
    run_search(config_from_dict(raw))
    run = str(tmp_path / "run")
    assert main(["results", run, "--verify", "2"]) == 2
    assert "has no budget to verify against; pass --budget-ms" in capsys.readouterr().err
    assert main(["results", run, "--verify", "2", "--budget-ms", "1e9"]) == 0
    assert "macs-proxy: not measured here" in capsys.readouterr().out  # a stand-in has no backend to time


def test_two_workers_started_together_derive_once(tmp_path) -> None:
    """A deriving strategy (ProxylessNAS) started by two workers at once is derived by one of them."""
    table = Path(__file__).resolve().parents[2] / "latency_tables" / "x86-2core_onnxruntime_t1_ofa_mbv3_r32.csv"
    options = {"steps": 4, "warmup_steps": 2, "batch_size": 8, "dataset": "fashion_mnist_tiny", "n_derived": 3}
    raw = _config(tmp_path, strategy={"name": "proxyless", "options": options},
                  latency={"tables": [{"path": str(table), "name": "cpu-ort"}], "target_ms": 0.5},
                  search={"n_trials": 3, "progress": False})
    path = _write(tmp_path, raw)
    procs = [_cli("search", "--config", str(path)) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    df = trials_table(config_from_dict(raw))
    done = df[df.state == "COMPLETE"]
    single = _config(tmp_path / "one", strategy={"name": "proxyless", "options": options},
                     latency={"tables": [{"path": str(table), "name": "cpu-ort"}], "target_ms": 0.5},
                     search={"n_trials": 3, "progress": False})
    run_search(config_from_dict(single))
    # one derivation: as many archs as a lone worker derives, all from one worker (the archs themselves may
    # differ in the last bits: torch's thread count differs between the processes)
    assert len(done) == len(trials_table(config_from_dict(single))) and done.worker.nunique() == 1
    assert all(r.startswith("another worker derives") for r in df[df.state == "FAIL"].fail_reason)
