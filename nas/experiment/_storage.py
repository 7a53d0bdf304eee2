"""Where a search keeps its trials: Optuna storage URLs, heartbeats and the trials of dead workers.

One Optuna study per strategy (``<name>.<strategy label>``) in one storage: a SQLite file in the run
folder by default, any Optuna RDB URL (PostgreSQL when several machines share a search), or a
journal file. Everything that touches Optuna's storage API lives here.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import optuna

from nas.experiment._config import ConfigError, ExperimentConfig, StrategyConfig

SQLITE_TIMEOUT_S = 30
"""SQLite busy timeout: concurrent workers wait for the lock instead of failing."""
HEARTBEAT_S = 20
"""A worker evaluating a trial records a heartbeat this often (RDB storages)."""
GRACE_S = 60
"""A RUNNING trial whose heartbeat is older than this belongs to a dead worker (any host) and is failed."""
OWNERLESS_GRACE_S = 5.0
"""A live worker names itself on a trial milliseconds after asking for it; a RUNNING trial still
ownerless after this long belongs to a process killed in between, and is not counted."""
CREATE_ATTEMPTS = 8
"""Workers started together on a fresh storage race to create its tables (Optuna creates them
check-then-act); the losers see "already exists" / a unique-key error and retry this many times."""


def storage_url(config: ExperimentConfig) -> str:
    if config.search.storage:
        return config.search.storage
    return f"sqlite:///{Path(config.run_dir).resolve() / 'study.db'}"


def _is_journal(url: str) -> bool:
    return url.startswith("journal:") or url.endswith((".log", ".journal"))


def postgres_driver(url: str) -> str:
    """A bare ``postgresql://`` URL with the driver that is installed: SQLAlchemy 2.1 reads it as
    psycopg 3, while `hwnas[postgres]` installs psycopg2."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL; a path ending in .log/.journal (or journal:PATH) is a journal file."""
    if _is_journal(url):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    kwargs: dict[str, Any] = {"heartbeat_interval": HEARTBEAT_S, "grace_period": GRACE_S}
    url = postgres_driver(url)
    if url.startswith("sqlite:"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(1, CREATE_ATTEMPTS):
        try:
            return _rdb_storage(url, kwargs)
        except (IntegrityError, OperationalError, ProgrammingError):
            time.sleep(0.05 * attempt)  # another worker is creating the schema: it is there next time
    return _rdb_storage(url, kwargs)  # the last try raises what it meets


def _rdb_storage(url: str, kwargs: dict[str, Any]) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
        return optuna.storages.RDBStorage(url, **kwargs)


def check_storage(config: ExperimentConfig) -> None:
    """The storage URL parses and a file storage's folder exists (or is the run folder, made later)."""
    url = storage_url(config)
    if _is_journal(url):
        file = Path(url.removeprefix("journal:"))
    else:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(url)
        except ArgumentError as err:
            raise ConfigError(f"search.storage: {url!r} is not a storage URL ({err})") from None
        if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
            return
        file = Path(parsed.database)
    folder = file.resolve().parent
    if not folder.is_dir() and folder != Path(config.run_dir).resolve():
        raise ConfigError(f"search.storage: folder {str(file.parent)!r} of {str(file)!r} does not exist")


def ask_trial(study: optuna.Study) -> optuna.Trial:
    """`study.ask()` without Optuna's advice to use `optimize` with heartbeats (`heartbeat` does it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed", category=UserWarning)
        return study.ask()


def study_name(config: ExperimentConfig, strategy: StrategyConfig, repeat: int = 1) -> str:
    """``NAME.LABEL`` for a strategy's first run, ``NAME.LABEL@R`` for its R-th (`search.seeds`)."""
    return f"{config.name}.{strategy.key}" + (f"@{repeat}" if repeat > 1 else "")


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
