"""CPU threads for supernet training: follow what other processes leave free, step by step.

torch's OpenMP threads spin-wait between the thousands of small parallel regions of a training
step. On a quiet 2-core machine two threads run the quickstart's full phase at ~6 steps/s against
~3.8 with one; when another process holds a core, the spinning thread burns it while the thread it
waits for is descheduled, and two threads fall to 0.04-0.16 steps/s (one thread: 1-2.8). A passive
wait policy avoids the collapse but costs the gain (3.5 steps/s with two threads on the quiet
machine). So `ThreadGovernor` measures, every couple of seconds, how much CPU the other processes
(and the hypervisor's steal) took, and runs as many threads as cores are free: all of them when
the machine is quiet, fewer as soon as it is not. Linux only (``/proc/stat``); elsewhere the
thread count is left alone. Figures: ``experiments/benchmarks/README.md``, supernet step rate.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

_PROC_STAT = Path("/proc/stat")
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (guest time is inside user)
_import_threads: int | None = None


def note_default_threads() -> None:
    """Remember torch's thread count as the package is imported (before ``--threads`` changes it)."""
    global _import_threads
    import torch

    _import_threads = torch.get_num_threads()


def threads_were_chosen() -> bool:
    """True when the user fixed the thread count: ``OMP_NUM_THREADS``, or ``torch.set_num_threads``
    (the CLI's ``--threads``) to a count other than torch's default."""
    import torch

    return "OMP_NUM_THREADS" in os.environ or (_import_threads is not None and torch.get_num_threads() != _import_threads)


def _busy_seconds() -> float | None:
    """CPU-seconds all processors spent busy since boot (steal included), or None off Linux."""
    try:
        fields = _PROC_STAT.read_text().split("\n", 1)[0].split()[1:]
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None
    return sum(int(fields[i]) for i in _BUSY_FIELDS if i < len(fields)) / ticks


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


class ThreadGovernor:
    """Sets torch's thread count to the cores other processes leave free, between 1 and `max_threads`.

    Call `update()` after every step; every `interval_s` it compares the CPU time the machine spent
    busy with this process's own, and picks ``floor(cpus - others + 0.25)`` threads: all cores when
    the others took under a quarter of one, one fewer per core they hold.
    """

    def __init__(self, max_threads: int, interval_s: float = 2.0, cpus: int | None = None) -> None:
        self.max_threads = max(1, int(max_threads))
        self.interval_s = float(interval_s)
        if cpus is None:
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.cpus = cpus
        self.switches = 0
        self._last = self._sample()
        self.enabled = self._last[1] is not None and self.max_threads > 1

    @staticmethod
    def _sample() -> tuple[float, float | None, float]:
        return time.monotonic(), _busy_seconds(), _own_seconds()

    def choose(self, others: float) -> int:
        """Threads to run while other processes use `others` cores."""
        return max(1, min(self.max_threads, math.floor(self.cpus - others + 0.25)))

    def update(self) -> int | None:
        """Re-measure when `interval_s` has passed; returns the new thread count when it changed."""
        if not self.enabled:
            return None
        now = self._sample()
        wall = now[0] - self._last[0]
        if wall < self.interval_s or now[1] is None or self._last[1] is None:
            return None
        others = max(0.0, (now[1] - self._last[1]) - (now[2] - self._last[2])) / wall
        self._last = now
        import torch

        want = self.choose(others)
        if want == torch.get_num_threads():
            return None
        torch.set_num_threads(want)
        self.switches += 1
        return want


def threading_summary(governed: bool = False) -> str:
    """One line for the training log: threads, who chooses them, and the kernels torch picked."""
    import torch

    how = "following free cores" if governed else "fixed"
    return (f"torch {torch.__version__}: {torch.get_num_threads()} thread(s) {how} on {os.cpu_count()} CPU(s), "
            f"kernels {torch.backends.cpu.get_cpu_capability()}")


__all__ = ["ThreadGovernor", "note_default_threads", "threading_summary", "threads_were_chosen"]
