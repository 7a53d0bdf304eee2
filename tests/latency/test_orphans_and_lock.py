"""A killed build takes its measuring processes with it, and a work folder has one live build at a time."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


from nas._device._runner import LOCK, WorkLockedError, _exclusive_file, measure, work_lock
from nas.latency._build import work_folder

TINY = str(Path(__file__).with_name("tiny_space.yaml"))
SLOW = ["--warmup", "2", "--repeats", "300"]  # >= 3 s per entry (10 ms a repeat): a pass outlives the checks


def _alive(pid: int) -> bool:
    """Running (a zombie left for a non-reaping init counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _runner_pids(work: Path) -> list[int]:
    """Pids of live `python -m nas._device <work> ...` pass processes."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"nas._device" in argv and str(work).encode() in argv and _alive(int(proc.name)):
            pids.append(int(proc.name))
    return pids


def _wait_for(cond, timeout: float = 120.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def _build_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "nas", "latency", "build", "--space", TINY, "--backend", "onnxruntime",
            "--out", str(out), "--quiet", "--no-canaries", *SLOW]


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG is Linux")


def test_killed_build_leaves_no_orphan_and_its_lock_is_taken_over(tmp_path):
    out = tmp_path / "t.csv"
    work = work_folder(out)
    proc = subprocess.Popen(_build_cmd(out), start_new_session=True)
    try:
        first = work / "passes" / "p0.jsonl"
        assert _wait_for(lambda: first.exists() and len(first.read_text().splitlines()) >= 1)
        children = _runner_pids(work)
        assert len(children) == 1, children

        # a second build on the same folder refuses and names the live one
        second = subprocess.run(_build_cmd(out), capture_output=True, text=True, timeout=120)
        assert second.returncode != 0
        assert f"process {proc.pid}" in second.stderr and "in use" in second.stderr, second.stderr
        assert _alive(children[0]), "the refused build left the live one alone"

        os.kill(proc.pid, signal.SIGKILL)  # the build only, not its process group
        proc.wait()
        assert _wait_for(lambda: not _alive(children[0]), timeout=3), "the pass worker outlived its build"
        assert _runner_pids(work) == []
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert json.loads((work / LOCK).read_text())["pid"] == proc.pid, "the dead build's lock file is left"
    with work_lock(work):  # taken over (test_resume_and_device resumes such a build to the end)
        assert json.loads((work / LOCK).read_text())["pid"] == os.getpid()


def test_killed_measure_caller_leaves_no_orphan(tmp_path):
    """Any process that calls measure() (calibrate and validate do) takes its pass worker with it."""
    out = tmp_path / "t.csv"
    script = (f"from nas.latency import build_table, Protocol; import nas\n"
              f"build_table(nas.load_space({TINY!r}), 'onnxruntime', {str(out)!r}, progress=False, canaries=False,\n"
              f"            protocol=Protocol(warmup=2, repeats=300))\n")
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    work = work_folder(out)
    try:
        assert _wait_for(lambda: len(_runner_pids(work)) == 1)
        child = _runner_pids(work)[0]
        with pytest.raises(WorkLockedError, match=f"process {proc.pid} on host"):
            measure(work, 1, progress=False)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _wait_for(lambda: not _alive(child), timeout=3), "the pass worker outlived its parent"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_pass_worker_whose_parent_is_already_gone_exits(tmp_path):
    """The start-up check: a worker told a parent pid that is not its parent quits before measuring."""
    not_parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        run = subprocess.run([sys.executable, "-m", "nas._device", str(tmp_path / "nowhere"),
                              "--pass-name", "p0", "--parent-pid", str(not_parent.pid)],
                             capture_output=True, text=True, timeout=60)
    finally:
        not_parent.kill()
        not_parent.wait()
    assert run.returncode == 3, (run.returncode, run.stderr)
    assert f"(pid {not_parent.pid}) is gone" in run.stderr
    assert not (tmp_path / "nowhere").exists()
    ok = subprocess.run([sys.executable, "-m", "nas._device", str(tmp_path / "nowhere"),
                         "--pass-name", "p0", "--parent-pid", str(os.getpid())], capture_output=True, text=True)
    assert ok.returncode == 2 and "not a latency work folder" in ok.stderr, "with its real parent it goes on"


def test_work_lock_is_reentrant_in_one_process_and_exclusive_across(tmp_path):
    with work_lock(tmp_path):
        with work_lock(tmp_path):  # build_table holds it, then measure() takes it again
            pass
        other = subprocess.run([sys.executable, "-c",
                                f"from nas._device._runner import work_lock\nwith work_lock({str(tmp_path)!r}): pass"],
                               capture_output=True, text=True)
        assert other.returncode != 0 and f"process {os.getpid()} on host" in other.stderr, other.stderr
    other = subprocess.run([sys.executable, "-c",
                            f"from nas._device._runner import work_lock\nwith work_lock({str(tmp_path)!r}): pass"],
                           capture_output=True, text=True)
    assert other.returncode == 0, other.stderr
    with pytest.raises(WorkLockedError, match="does not exist"):
        with work_lock(tmp_path / "missing"):
            pass


def test_exclusive_file_lock_without_fcntl(tmp_path):
    """The fallback where flock is missing: a dead holder's file is taken over, a live one refuses."""
    path = tmp_path / LOCK
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    with _exclusive_file(path):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        path.write_text(json.dumps({"pid": live.pid, "host": socket.gethostname()}))
        with pytest.raises(WorkLockedError, match=f"process {live.pid} on host"):
            with _exclusive_file(path):
                pass
    finally:
        live.kill()
        live.wait()
