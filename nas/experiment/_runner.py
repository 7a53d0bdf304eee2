"""`run_search`: run an experiment config; every trial persisted in Optuna storage.

One Optuna study per strategy and seed (``<name>.<strategy label>``, then ``@2``, ``@3``... for
`search.seeds` > 1) in one storage (SQLite file in the run
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

import os
import socket
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import optuna

from nas._arch import Arch
from nas.evaluators import Result
from nas.experiment._build import SearchSetup, prepare_search, strategy_latency_fn
from nas.experiment._config import ConfigError, ExperimentConfig, StrategyConfig
from nas.experiment._rundir import prepare_run_dir, save_presets
from nas.experiment._storage import (ask_trial, counted_trials, fail_stale_trials, heartbeat, open_storage,
                                     storage_url, study_name)
from nas.strategies import DerivingStrategy, Strategy, make_strategy

OVER_BUDGET = "over budget"


# ---------------------------------------------------------------------- the worker loop
@dataclass
class WorkerReport:
    study: str
    completed_here: int
    completed_total: int
    stale_failed: int


class _Worker:
    """One strategy's study, worked on by this process with the parts `prepare_search` built."""

    def __init__(self, setup: SearchSetup, strategy_config: StrategyConfig, storage: Any, repeat: int = 1) -> None:
        self.config, self.sc, self.space, self.repeat = setup.config, strategy_config, setup.space, repeat
        self.sources, self.evaluator, self.objective = setup.sources, setup.evaluator, setup.objective
        self.latency_fn = strategy_latency_fn(setup.sources, setup.objective)
        self.name = study_name(self.config, strategy_config, repeat)
        self.storage = storage
        self.study = optuna.create_study(study_name=self.name, storage=storage, load_if_exists=True,
                                         directions=["maximize", "minimize"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.set_metric_names(["accuracy", f"latency_ms[{self.sources[0].name}]"])
        self.strategy: Strategy | None = None
        self.told: set[int] = set()

    def _make_strategy(self, first_number: int) -> Strategy:
        entropy = [self.config.seed, first_number] if self.repeat == 1 else [self.config.seed, first_number, self.repeat]
        seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
        return make_strategy(self.sc.name, self.space, self.sc.options, seed=seed, objective=self.objective,
                             latency_fn=self.latency_fn, max_tries=self.config.search.max_tries)

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
                trial = ask_trial(self.study)
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

    def record(self, arch: Arch, result: Result, extra: dict[str, Any] | None = None,
               trial: optuna.Trial | None = None) -> int:
        """Persist an arch found outside ask/tell (e.g. derived by ProxylessNAS) as a completed trial:
        `trial` (one this worker asked and named itself on), else a new one."""
        self.space.validate(arch)
        if trial is None:
            trial = ask_trial(self.study)
            trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
        self._complete(trial, arch, result, extra or {})
        return trial.number

    def _complete(self, trial: optuna.Trial, arch: Arch, result: Result, extra: dict[str, Any]) -> None:
        """Store the arch, its result and the run's record on `trial` and complete it."""
        trial.set_user_attr("arch", arch.to_json())
        trial.set_user_attr("result", result.to_dict())
        trial.set_user_attr("record", {"arch_short": arch.short(), "strategy": self.sc.key, "seed": self.repeat,
                                       "strategy_name": self.sc.name, "evaluator": self.evaluator.name,
                                       "reward": self.objective.score(result), **extra})
        self.study.tell(trial, [result.accuracy, self.objective.latency(result)])

    def run_derived(self, strategy: DerivingStrategy, progress: bool) -> WorkerReport:
        """Run a deriving strategy once; each derived arch is evaluated and stored as a completed trial.

        Workers started together claim the derivation by trial number: each asks a trial first, and one
        that finds a live or completed trial numbered below its own leaves the work to that worker (its
        claim is failed, "another worker derives"). The winner's claim holds its first derived arch."""
        stale = fail_stale_trials(self.storage, self.study)
        complete = (optuna.trial.TrialState.COMPLETE,)
        before = len(self.study.get_trials(deepcopy=False, states=complete))
        if before:  # a derivation is deterministic given the seed: once recorded, a rerun adds nothing
            return WorkerReport(self.name, 0, before, stale)
        claim = ask_trial(self.study)
        claim.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
        ahead = [t for t in self.study.get_trials(deepcopy=False)
                 if t.number < claim.number and t.state != optuna.trial.TrialState.FAIL]
        if ahead:
            claim.set_user_attr("fail_reason", f"another worker derives (trial {ahead[0].number})")
            self.study.tell(claim, state=optuna.trial.TrialState.FAIL)
            return WorkerReport(self.name, 0, before, stale)
        first = True
        try:
            with heartbeat(self.storage, self.study, claim):
                for arch, notes in strategy.derive(progress):
                    self.record(arch, self.evaluator.evaluate(arch), notes, claim if first else None)
                    first = False
        finally:
            if first:  # nothing derived (or interrupted before the first arch): the claim is released
                claim.set_user_attr("fail_reason", "derivation ended before its first arch")
                self.study.tell(claim, state=optuna.trial.TrialState.FAIL)
        total = len(self.study.get_trials(deepcopy=False, states=complete))
        return WorkerReport(self.name, total - before, total, stale)

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
        self._complete(trial, arch, result, {"ask_seconds": round(t1 - t0, 6), "eval_seconds": round(t2 - t1, 6)})
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
    prepare_run_dir(config, setup.sources, setup.budget_ms, setup.budgets, setup.goal)
    storage = open_storage(storage_url(config))
    progress = config.search.progress if progress is None else progress
    reports = []
    for sc in config.strategies:
        if strategies and sc.key not in strategies:
            continue
        deriving = setup.deriving.get(sc.key)
        if deriving is not None:
            reports.append(_Worker(setup, sc, storage).run_derived(deriving, progress))
            continue
        for repeat in range(1, config.search.seeds + 1):
            reports.append(_Worker(setup, sc, storage, repeat).run(progress))
    save_presets(config, setup.space, setup.evaluator, setup.sources, setup.budget_ms)
    return reports


