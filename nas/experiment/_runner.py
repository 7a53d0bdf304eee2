"""`run_search`: run an experiment config; every trial persisted in Optuna storage.

One Optuna study per strategy (``<name>.<strategy label>``) in one storage (SQLite file in the run
folder by default, any Optuna RDB URL, or a journal file). Each trial records the arch JSON, the
objectives (accuracy, latency per table, params, MACs, reward), timings, strategy and worker.

- Resume: rerunning the same config continues; completed trials are kept and told to a fresh
  strategy (replay), trials left RUNNING by a dead process on this host are marked FAIL, and (RDB
  storages: SQLite, PostgreSQL) so are those of any host whose heartbeat stopped for `GRACE_S`.
- Workers: N processes with the same config cooperate on one study: each tells its strategy
  the trials the others completed; trial numbers (assigned atomically by the storage) decide
  which trials fit the budget, so none is lost or run twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import optuna
import yaml

import nas
from nas._arch import Arch
from nas._space import SearchSpace
from nas.evaluators import EvaluatorBase, LatencySource, Result
from nas.experiment._build import EXTERNAL_STRATEGIES, build_objective, open_storage, prepare_search, storage_url
from nas.experiment._config import ConfigError, ExperimentConfig, StrategyConfig
from nas.strategies import Strategy, make_strategy

OVER_BUDGET = "over budget"
OWNERLESS_GRACE_S = 5.0
"""A live worker names itself on a trial milliseconds after asking for it; a RUNNING trial still
ownerless after this long belongs to a process killed in between, and is not counted."""


def _ask(study: optuna.Study) -> optuna.Trial:
    """`study.ask()` without Optuna's advice to use `optimize` with heartbeats (`heartbeat` does it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed", category=UserWarning)
        return study.ask()


def study_name(config: ExperimentConfig, strategy: StrategyConfig) -> str:
    return f"{config.name}.{strategy.key}"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------- the run folder
_RESUMABLE = ("search",)  # a rerun may change these (e.g. more trials, another storage)


def prepare_run_dir(config: ExperimentConfig, sources: Sequence[LatencySource], budget_ms: float | None = None
                    ) -> Path:
    """Create the run folder; save the resolved config, versions and table metadata.

    A run folder holding a different config (other than the `search` section) is an error naming
    the keys that differ: resuming must not silently mix two experiments.
    """
    run = Path(config.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    resolved = config.to_dict()
    saved_path = run / "config.yaml"
    if saved_path.is_file():
        saved = yaml.safe_load(saved_path.read_text()) or {}
        diff = _differences({k: v for k, v in saved.items() if k not in _RESUMABLE},
                            {k: v for k, v in resolved.items() if k not in _RESUMABLE})
        if diff:
            raise ConfigError(f"run folder {str(run)!r} holds a different experiment (keys {diff} differ); "
                              "use another run_dir or the same config")
    _atomic_write(saved_path, yaml.safe_dump(resolved, sort_keys=False))
    from nas._device._fingerprint import fingerprint

    meta = {"hwnas_version": nas.__version__, "optuna_version": optuna.__version__,
            "storage": storage_url(config), "budget_ms": budget_ms, "machine": fingerprint(),
            "tables": [_source_metadata(s) for s in sources]}
    _atomic_write(run / "meta.json", json.dumps(meta, indent=2, default=str))
    return run


def _source_metadata(source: LatencySource) -> dict[str, Any]:
    meta = getattr(source, "metadata", None)
    return meta() if callable(meta) else {"name": source.name}


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if a == b else [prefix]


# ---------------------------------------------------------------------- the worker loop
@dataclass
class WorkerReport:
    study: str
    completed_here: int
    completed_total: int
    stale_failed: int


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _age_s(trial: optuna.trial.FrozenTrial) -> float:
    import datetime as dt

    start = trial.datetime_start
    return (dt.datetime.now() - start).total_seconds() if start else float("inf")


def _ownerless(trial: optuna.trial.FrozenTrial) -> bool:
    return trial.state == optuna.trial.TrialState.RUNNING and "worker" not in trial.user_attrs


def counted_trials(study: optuna.Study, below: int | None = None) -> list[optuna.trial.FrozenTrial]:
    """Trials that use the budget (COMPLETE or RUNNING, numbered below `below`): waits up to
    `OWNERLESS_GRACE_S` for just-asked trials to be named, then leaves out the ownerless ones."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
    deadline = time.monotonic() + OWNERLESS_GRACE_S
    while True:
        trials = [t for t in study.get_trials(deepcopy=False, states=states) if below is None or t.number < below]
        young = [t for t in trials if _ownerless(t) and _age_s(t) < OWNERLESS_GRACE_S]
        if not young or time.monotonic() > deadline:
            return [t for t in trials if not _ownerless(t)]
        time.sleep(0.05)


def _heartbeat_interval(storage: optuna.storages.BaseStorage) -> int | None:
    """The storage's heartbeat interval (s); None when it keeps no heartbeats (journal, in-memory)."""
    get = getattr(storage, "get_heartbeat_interval", None)
    return get() if callable(get) and callable(getattr(storage, "record_heartbeat", None)) else None


@contextlib.contextmanager
def heartbeat(storage: optuna.storages.BaseStorage, study: optuna.Study, trial: optuna.Trial):
    """Record the trial's heartbeat in `storage` (the study's) every `heartbeat_interval` s while the
    block runs (RDB storages; a no-op on storages without heartbeats), so workers on other hosts can
    tell it is alive."""
    interval = _heartbeat_interval(storage)
    if not interval:
        yield
        return
    stop = threading.Event()
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name),
                                                               trial.number)

    def beat() -> None:
        while True:
            storage.record_heartbeat(trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fail_stale_trials(storage: optuna.storages.BaseStorage, study: optuna.Study) -> int:
    """Mark FAIL the RUNNING trials whose worker process (on this host) is gone, those whose
    heartbeat (any host, RDB storages) is older than the storage's grace period, and those left
    ownerless (killed between ask and naming itself) for more than 30 s."""
    n = 0
    if _heartbeat_interval(storage):
        before = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        n = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))) - before
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        who = t.user_attrs.get("worker") or {}
        dead_here = who.get("host") == host and "pid" in who and not _alive(int(who["pid"]))
        if dead_here or (not who and _age_s(t) > 30):
            try:
                study.tell(t.number, state=optuna.trial.TrialState.FAIL)
                n += 1
            except (RuntimeError, ValueError):  # finished meanwhile
                pass
    return n


class _Worker:
    def __init__(self, config: ExperimentConfig, strategy_config: StrategyConfig, space: SearchSpace,
                 sources: Sequence[LatencySource], evaluator: EvaluatorBase, storage: Any) -> None:
        self.config, self.sc, self.space = config, strategy_config, space
        self.sources, self.evaluator = list(sources), evaluator
        self.objective = build_objective(config, sources, space)
        self.name = study_name(config, strategy_config)
        self.storage = storage
        self.study = optuna.create_study(study_name=self.name, storage=storage, load_if_exists=True,
                                         directions=["maximize", "minimize"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.set_metric_names(["accuracy", f"latency_ms[{sources[0].name}]"])
        self.strategy: Strategy | None = None
        self.told: set[int] = set()

    def _make_strategy(self, first_number: int) -> Strategy:
        seed = int(np.random.SeedSequence([self.config.seed, first_number]).generate_state(1)[0])
        return make_strategy(self.sc.name, self.space, self.sc.options, seed=seed, objective=self.objective,
                             latency_fn=self.sources[0].predict_many, max_tries=self.config.search.max_tries)

    def _sync(self) -> list[optuna.trial.FrozenTrial]:
        """Tell the strategy every completed trial it has not seen (replay on resume, other workers)."""
        trials = self.study.get_trials(deepcopy=False)
        if self.strategy is not None:
            fresh = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.number not in self.told]
            for t in sorted(fresh, key=lambda t: t.number):
                self.strategy.tell(Arch.from_json(t.user_attrs["arch"]), Result.from_dict(t.user_attrs["result"]))
                self.told.add(t.number)
        return trials

    def run(self, progress: bool) -> WorkerReport:
        from tqdm import tqdm

        stale = fail_stale_trials(self.storage, self.study)
        n_trials = self.config.search.n_trials
        done_here = 0
        counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
        trials = self.study.get_trials(deepcopy=False)
        bar = tqdm(total=n_trials, initial=sum(t.state == counted[0] for t in trials), desc=self.name,
                   disable=not progress, unit="trial", dynamic_ncols=True)
        try:
            while True:
                self._sync()
                if len(counted_trials(self.study)) >= n_trials:
                    break
                trial = _ask(self.study)
                trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
                if len(counted_trials(self.study, below=trial.number)) >= n_trials:  # another worker took the last slot
                    trial.set_user_attr("fail_reason", OVER_BUDGET)
                    self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    break
                if self.strategy is None:
                    self.strategy = self._make_strategy(trial.number)
                    self._sync()
                with heartbeat(self.storage, self.study, trial):
                    self._evaluate(trial)
                done_here += 1
                bar.update(1)
        finally:
            bar.close()
        total = sum(t.state == optuna.trial.TrialState.COMPLETE for t in self.study.get_trials(deepcopy=False))
        return WorkerReport(self.name, done_here, total, stale)

    def record(self, arch: Arch, result: Result, extra: dict[str, Any] | None = None) -> int:
        """Persist an arch found outside ask/tell (e.g. derived by ProxylessNAS) as a completed trial."""
        self.space.validate(arch)
        trial = _ask(self.study)
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
        trial.set_user_attr("arch", arch.to_json())
        trial.set_user_attr("result", result.to_dict())
        trial.set_user_attr("record", {"arch_short": arch.short(), "strategy": self.sc.key,
                                       "strategy_name": self.sc.name, "evaluator": self.evaluator.name,
                                       "reward": self.objective.score(result), **(extra or {})})
        self.study.tell(trial, [result.accuracy, self.objective.latency(result)])
        return trial.number

    def run_external(self, progress: bool) -> WorkerReport:
        import importlib

        target = EXTERNAL_STRATEGIES[self.sc.name]
        module_name, func_name = target.split(":")
        try:
            fn = getattr(importlib.import_module(module_name), func_name)
        except (ImportError, AttributeError):
            raise ConfigError(f"strategy {self.sc.name!r} needs {target} (not in this build)") from None
        before = len(self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        if before:  # a derivation is deterministic given the seed: once recorded, a rerun adds nothing
            return WorkerReport(self.name, 0, before, 0)
        fn(self.config, self.sc, self.space, self.sources, self.evaluator, self.record)
        total = len(self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        return WorkerReport(self.name, total - before, total, 0)

    def _evaluate(self, trial: optuna.Trial) -> None:
        assert self.strategy is not None
        try:
            t0 = time.perf_counter()
            arch = self.strategy.ask()
            t1 = time.perf_counter()
            result = self.evaluator.evaluate(arch)
            t2 = time.perf_counter()
        except BaseException as err:
            trial.set_user_attr("fail_reason", f"{type(err).__name__}: {err}"[:500])
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        trial.set_user_attr("arch", arch.to_json())
        trial.set_user_attr("result", result.to_dict())
        trial.set_user_attr("record", {
            "arch_short": arch.short(), "strategy": self.sc.key, "strategy_name": self.sc.name,
            "evaluator": self.evaluator.name, "reward": self.objective.score(result),
            "ask_seconds": round(t1 - t0, 6), "eval_seconds": round(t2 - t1, 6)})
        self.study.tell(trial, [result.accuracy, self.objective.latency(result)])
        self.strategy.tell(arch, result)
        self.told.add(trial.number)


def run_search(config: ExperimentConfig, *, progress: bool | None = None, strategies: Sequence[str] | None = None,
               notice: Callable[[str], None] | None = None) -> list[WorkerReport]:
    """Run (or resume, or join as one more worker) every strategy of `config` (or those labelled
    `strategies`). The whole config is checked first (`prepare_search`): a bad one writes nothing.
    `notice` gets one line naming the stand-ins (MACs proxy, synthetic accuracy) when there are any,
    and one per latency table measured on another machine."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    labels = [sc.key for sc in config.strategies]
    unknown = sorted(set(strategies or ()) - set(labels))
    if unknown:
        raise ConfigError(f"--strategy {unknown}: not a strategy label of this experiment; labels: {labels}")
    setup = prepare_search(config, strategies)
    if notice is not None and setup.stand_ins:
        notice(setup.stand_ins.notice())
    for line in setup.machine_warnings if notice is not None else ():
        notice(line)
    space, sources, evaluator, budget_ms = setup.space, setup.sources, setup.evaluator, setup.budget_ms
    prepare_run_dir(config, sources, budget_ms)
    storage = open_storage(storage_url(config))
    progress = config.search.progress if progress is None else progress
    reports = []
    for sc in config.strategies:
        if strategies and sc.key not in strategies:
            continue
        worker = _Worker(config, sc, space, sources, evaluator, storage)
        reports.append(worker.run_external(progress) if sc.name in EXTERNAL_STRATEGIES else worker.run(progress))
    _save_presets(config, space, evaluator, sources, budget_ms)
    return reports


def _save_presets(config: ExperimentConfig, space: SearchSpace, evaluator: EvaluatorBase,
                  sources: Sequence[LatencySource], budget_ms: float | None) -> None:
    """Evaluate the space's presets once (reference points of the results plot), and each preset
    family's largest member within the budget on the first table (a hand-designed baseline scaled
    to the same latency, e.g. MobileNetV2-style)."""
    path = Path(config.run_dir) / "presets.json"
    if path.is_file():
        return
    wanted = config.results.presets
    resolution = space.resolutions[-1]
    out: dict[str, Any] = {}
    for name in space.preset_names if wanted is None else wanted:
        if name in space.preset_family_names:
            continue
        try:
            arch = space.preset(name, resolution=resolution)
            out[name] = {"arch": arch.to_dict(), "result": evaluator.evaluate(arch).to_dict()}
        except nas.HwnasError as err:
            out[name] = {"error": str(err)}
    for name in space.preset_family_names:
        if budget_ms is None or (wanted is not None and name not in wanted):
            continue
        members = space.preset_family(name, resolution=resolution)
        latency = sources[0].predict_many(members)
        fits = [i for i in np.argsort(latency) if latency[i] <= budget_ms]
        label = f"{name} (scaled)"
        if not fits:
            out[label] = {"error": f"no member of {name} within {budget_ms:.4g} ms on {sources[0].name} "
                                   f"(fastest {float(latency.min()):.4g} ms)"}
            continue
        arch = members[fits[-1]]
        out[label] = {"arch": arch.to_dict(), "result": evaluator.evaluate(arch).to_dict(), "family": name,
                      "scaled_to_ms": budget_ms, "description": space.preset_family_description(name)}
    _atomic_write(path, json.dumps(out, indent=1))
