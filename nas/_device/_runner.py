"""Measure the entries of a work folder in independent passes, one process per pass.

A work folder holds ``manifest.json`` (backend, protocol, entries) and, for file backends, the
model files. Each pass appends one JSON line per entry to ``passes/<name>.jsonl`` as soon as the
entry is timed, so a killed run loses at most the entry in flight and a re-run skips what is done.
Passes visit the entries in different random orders (interleaved), so a slow spell of the machine
hits different entries in different passes. A backend without model files (``torch``) is opened by
the `OpenEntry` function its host-side caller passes to `measure`; this package never imports torch.

A live `measure` holds the folder's lock (`work_lock`): ``<work>/lock`` under an exclusive
``flock``, recording pid, host and start time for the error a second build gets. The kernel drops a
``flock`` when its holder dies, so a lock left by a dead process is simply taken over (where
``fcntl`` is missing the lock is an ``O_EXCL`` file, taken over when the pid it names is gone).
Each pass process dies with its parent (`die_with_parent`: ``PR_SET_PDEATHSIG`` on Linux, then a
check that the parent is still the one that started it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from nas._atomic import atomic_write_json
from nas._device._runtimes import FILE_BACKENDS, open_model
from nas._device._timing import PassStats, Protocol, core_spread_pct, combine_passes, spread_pct, time_pass
from nas._errors import HwnasError

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "hwnas-latency-work"
NETWORKS = "networks"
"""A bundle's sub-folder of whole networks (canaries, calibration, held-out archs): its own manifest."""
OpenEntry = Callable[..., Callable[[], Any]]
"""``open_entry(entry, threads, **backend_options) -> run``, a module-level function (passes import it)."""


class RunnerError(HwnasError):
    """A work folder or bundle is malformed, or a measuring process failed."""


def read_manifest(work: str | Path) -> dict[str, Any]:
    path = Path(work) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunnerError(f"{str(path)!r} does not exist: not a latency work folder or bundle") from None
    except json.JSONDecodeError as err:
        raise RunnerError(f"{str(path)!r} is not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise RunnerError(f"{str(path)!r} is not a hwnas latency manifest (format != {MANIFEST_FORMAT!r})")
    for field in ("backend", "protocol", "entries"):
        if field not in manifest:
            raise RunnerError(f"{str(path)!r}: missing field {field!r}")
    return manifest


def read_pass(path: Path) -> dict[str, PassStats]:
    """Entries finished in one pass file (a torn last line from a crash is ignored)."""
    done: dict[str, PassStats] = {}
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
            done[row["id"]] = PassStats(row["median_ms"], row["mean_ms"], row["std_ms"], row["p90_ms"], row["count"])
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return done


def _open_for_append(path: Path):  # noqa: ANN202
    """Open a pass file for appending, first cutting a torn last line left by a crash."""
    if path.exists():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
    return open(path, "a")


def _opener(manifest: Mapping[str, Any], work: Path, threads: int,
            open_entry: OpenEntry | None) -> Callable[[Mapping[str, Any]], Callable[[], Any]]:
    backend = manifest["backend"]
    if backend in FILE_BACKENDS:
        return lambda entry: open_model(backend, str(work / entry["file"]), threads)
    if open_entry is None:
        raise RunnerError(f"backend {backend!r} has no model files: measure it on the host (nas.latency)")
    options = manifest.get("backend_options", {})
    return lambda entry: open_entry(entry, threads, **options)


def run_pass(work: str | Path, name: str, seed: int, threads: int, ids: Iterable[str] | None = None,
             progress: bool = True, open_entry: OpenEntry | None = None) -> None:
    """Time the entries of pass `name` not yet in its file, in this process, in a seeded random order."""
    work = Path(work)
    manifest = read_manifest(work)
    protocol = Protocol.from_dict(manifest["protocol"])
    entries = {e["id"]: e for e in manifest["entries"]}
    wanted = list(entries) if ids is None else list(ids)
    path = work / "passes" / f"{name}.jsonl"
    path.parent.mkdir(exist_ok=True)
    done = read_pass(path)
    todo = [i for i in wanted if i not in done]
    order = np.random.default_rng(seed).permutation(len(todo))
    opener = _opener(manifest, work, threads, open_entry)
    bar = _progress(len(todo), f"pass {name}", progress)
    with _open_for_append(path) as out:
        for k in order:
            entry = entries[todo[k]]
            try:
                run = opener(entry)
                stats = time_pass(run, protocol)
            except HwnasError:
                raise
            except Exception as err:  # noqa: BLE001 - name the entry that failed
                raise RunnerError(f"measuring {entry.get('name', entry['id'])} failed: {err}") from err
            del run
            out.write(json.dumps({"id": entry["id"], **stats.to_dict()}) + "\n")
            out.flush()
            os.fsync(out.fileno())
            bar(1)
    bar(0, close=True)


def _progress(total: int, desc: str, enabled: bool) -> Callable[..., None]:
    if not enabled or total == 0:
        return lambda n, close=False: None
    try:
        from tqdm import tqdm
    except ImportError:  # a bare device: print a line every 10%
        state = {"n": 0}

        def bar(n: int, close: bool = False) -> None:
            state["n"] += n
            if close or state["n"] % max(1, total // 10) == 0:
                print(f"{desc}: {state['n']}/{total}", file=sys.stderr, flush=True)
        return bar
    t = tqdm(total=total, desc=desc, unit="entry", leave=False)

    def bar(n: int, close: bool = False) -> None:
        t.update(n)
        if close:
            t.close()
    return bar


LOCK = "lock"
_held: dict[str, int] = {}  # folder -> nesting depth, so a build that holds the lock may call measure()


class WorkLockedError(RunnerError):
    """Another live process holds the work folder."""


def _describe(info: dict[str, Any] | None, path: Path) -> str:
    if not info:
        return f"another process (see {str(path)!r})"
    return (f"process {info.get('pid')} on host {info.get('host')!r} "
            f"(started {info.get('started', '?')}: {info.get('command', '?')})")


def _read_info(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _my_info() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join(sys.argv)[:200]}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkLockedError(f"work folder {str(path.parent)!r} is in use by "
                                  f"{_describe(_read_info(path), path)}; wait for it or stop it") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_my_info()).encode())
        os.fsync(fd)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # the file stays (unlinking a flocked file races); empty = not held
    finally:
        os.close(fd)  # closing drops the flock


@contextlib.contextmanager
def _exclusive_file(path: Path) -> Iterator[None]:
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            info = _read_info(path)
            if info and (info.get("host") != socket.gethostname() or _pid_alive(int(info.get("pid", -1)))):
                raise WorkLockedError(f"work folder {str(path.parent)!r} is in use by {_describe(info, path)}; "
                                      "wait for it or stop it") from None
            path.unlink(missing_ok=True)  # left by a dead process: take it over
    else:
        raise WorkLockedError(f"work folder {str(path.parent)!r}: could not take {str(path)!r}")
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(_my_info()))
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def work_lock(work: str | Path) -> Iterator[None]:
    """Hold `work` for this process; raises WorkLockedError naming the live holder if another has it.

    Re-entrant within one process. The folder must exist."""
    work = Path(work)
    key = str(work.resolve())
    if _held.get(key):
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    if not work.is_dir():
        raise WorkLockedError(f"work folder {str(work)!r} does not exist")
    try:
        import fcntl  # noqa: F401
        hold = _flock
    except ImportError:  # pragma: no cover - Windows
        hold = _exclusive_file
    with hold(work / LOCK):
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]


def die_with_parent(parent_pid: int | None) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux), then exit at once if
    the parent is already not `parent_pid` (it died before the request took effect)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl (e.g. a static or unusual runtime): check only
            pass
    if parent_pid is not None and os.getppid() != parent_pid:
        print(f"error: the build that started this pass (pid {parent_pid}) is gone (parent now {os.getppid()}); "
              "exiting", file=sys.stderr, flush=True)
        os._exit(3)


def _spawn_pass(work: Path, name: str, seed: int, threads: int, ids: list[str] | None, progress: bool,
                open_entry: OpenEntry | None) -> None:
    cmd = [sys.executable, "-m", "nas._device", str(work), "--pass-name", name, "--seed", str(seed),
           "--threads", str(threads), "--parent-pid", str(os.getpid())]
    if open_entry is not None:
        cmd += ["--open-entry", f"{open_entry.__module__}:{open_entry.__qualname__}"]
    if ids is not None:
        ids_file = work / "passes" / f"{name}.ids.json"
        ids_file.parent.mkdir(exist_ok=True)
        atomic_write_json(ids_file, ids)
        cmd += ["--ids-file", str(ids_file)]
    if not progress:
        cmd.append("--quiet")
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # so the child finds `nas` when run from a bundle
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    result = subprocess.run(cmd, env=env, stderr=subprocess.PIPE if not progress else None, text=True)
    if result.returncode != 0:
        detail = (result.stderr or "").strip().splitlines()[-1:] if not progress else []
        raise RunnerError(f"measuring pass {name!r} in {str(work)!r} failed (exit {result.returncode})"
                          + (f": {detail[0]}" if detail else ""))


def measure(work: str | Path, threads: int, progress: bool = True,
            open_entry: OpenEntry | None = None) -> dict[str, dict[str, Any]]:
    """Every entry of the work folder: `protocol.passes` passes in separate processes, then
    `remeasure_passes` more for the entries whose first passes disagree by more than
    `max_spread_pct`. Returns entry id -> latency_ms, mean_ms, std_ms, p90_ms, count, passes,
    spread_pct, remeasured (first passes disagreed), flagged (even the `passes` passes nearest
    the median disagree by more than max_spread_pct).
    Resumable: finished passes and entries are read back, not measured again. Holds the folder's
    lock (`work_lock`) throughout; each pass process dies with this one. `open_entry` opens the
    entries of a backend without model files (the host's torch backend)."""
    work = Path(work)
    read_manifest(work)  # a clear error for a folder that is not a work folder, before the lock
    with work_lock(work):
        return _measure(work, threads, progress, open_entry)


def _measure(work: Path, threads: int, progress: bool, open_entry: OpenEntry | None) -> dict[str, dict[str, Any]]:
    manifest = read_manifest(work)
    open_entry = None if manifest["backend"] in FILE_BACKENDS else open_entry
    protocol = Protocol.from_dict(manifest["protocol"])
    ids = [e["id"] for e in manifest["entries"]]
    for p in range(protocol.passes):
        if set(ids) - set(read_pass(work / "passes" / f"p{p}.jsonl")):
            _spawn_pass(work, f"p{p}", p, threads, None, progress, open_entry)
    base = [read_pass(work / "passes" / f"p{p}.jsonl") for p in range(protocol.passes)]
    unstable = [i for i in ids if spread_pct([b[i].median_ms for b in base]) > protocol.max_spread_pct]
    extra: list[dict[str, PassStats]] = []
    for r in range(protocol.remeasure_passes if unstable else 0):
        name = f"r{r}"
        if set(unstable) - set(read_pass(work / "passes" / f"{name}.jsonl")):
            _spawn_pass(work, name, 1000 + r, threads, unstable, progress, open_entry)
        extra.append(read_pass(work / "passes" / f"{name}.jsonl"))
    flagged_set = set(unstable)
    results: dict[str, dict[str, Any]] = {}
    for i in ids:
        passes = [b[i] for b in base] + [e[i] for e in extra if i in e]
        row = combine_passes(passes)
        row["remeasured"] = int(i in flagged_set)
        core = core_spread_pct([p.median_ms for p in passes], protocol.passes)
        row["flagged"] = int(core > protocol.max_spread_pct)
        results[i] = row
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one measuring pass over a latency work folder (internal)")
    parser.add_argument("work")
    parser.add_argument("--pass-name", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ids-file", default=None)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--parent-pid", type=int, default=None, help="exit if this is no longer the parent")
    parser.add_argument("--open-entry", default=None, help="module:function opening entries without model files")
    args = parser.parse_args(argv)
    die_with_parent(args.parent_pid)
    ids = json.loads(Path(args.ids_file).read_text()) if args.ids_file else None
    module, _, name = (args.open_entry or "").partition(":")
    open_entry = getattr(importlib.import_module(module), name) if module else None
    try:
        run_pass(args.work, args.pass_name, args.seed, args.threads, ids, not args.quiet, open_entry)
    except HwnasError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
