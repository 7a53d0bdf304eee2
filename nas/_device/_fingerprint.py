"""The machine a latency was measured on: CPU identity, caches, ISA features, runtime, OS.

A latency table is a fact about one CPU, runtime and thread count. `fingerprint` records what
changes which kernels run and how fast (recorded in every table, device-runner output and run);
`fingerprint_diff` names the fields in which two fingerprints differ. No torch here (the device
runner records fingerprints too); torch is imported only to read its kernel path for the torch
backend. A field that could not be read is ``None`` ("unknown"), never a guess.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

FINGERPRINT_VERSION = 1

ISA_FEATURES = (
    # x86: the vector widths and dot-product / matrix units that oneDNN, MLAS and XNNPACK dispatch on
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
    "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16",
    # Arm
    "asimd", "asimdhp", "asimddp", "sve", "sve2", "i8mm", "bf16",
)
"""The `/proc/cpuinfo` flags recorded (those present on this CPU)."""

MAJOR_FIELDS = ("cpu.vendor", "cpu.family", "cpu.model", "cpu.stepping", "cpu.model_name", "cpu.logical_cpus",
                "caches", "isa", "runtime.backend", "runtime.version", "runtime.kernel_path", "runtime.threads")
"""Fields whose difference means the table may not hold here (the others are reported, not judged)."""


def _cpuinfo() -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo (empty off Linux)."""
    out: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        if not line.strip():
            if out:
                break
            continue
        if ":" in line:
            k, v = line.split(":", 1)
            out.setdefault(k.strip().lower(), v.strip())
    return out


def _caches() -> dict[str, str] | None:
    """Cache sizes of cpu0 by level and type, e.g. ``{"L1d": "48K", "L2": "2048K", "L3": "491520K"}``."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    out: dict[str, str] = {}
    try:
        for index in sorted(base.glob("index*")):
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
            suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
            out[f"L{level}{suffix}"] = size
    except OSError:
        return None
    return out or None


def _int(value: str | None) -> int | None:
    try:
        return int(value, 0) if value is not None else None
    except ValueError:
        return None


def cpu_fingerprint() -> dict[str, Any]:
    """CPU identity, caches and ISA features of this machine (Linux: /proc and /sys; else what
    `platform` knows, the rest unknown)."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("features") or "").split())
    arm = "cpu implementer" in info
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    cpu = {
        "vendor": info.get("vendor_id") or (f"arm-implementer-{info['cpu implementer']}" if arm else None),
        "family": _int(info.get("cpu family")) if not arm else _int(info.get("cpu architecture")),
        "model": _int(info.get("model")) if not arm else _int(info.get("cpu part")),
        "stepping": _int(info.get("stepping")) if not arm else _int(info.get("cpu revision")),
        "model_name": info.get("model name") or platform.processor() or None,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "hypervisor": "hypervisor" in flags if flags else None,
    }
    return {"cpu": cpu, "caches": _caches(), "isa": sorted(f for f in ISA_FEATURES if f in flags) if flags else None}


def runtime_fingerprint(backend: str, threads: int, version: str | None = None) -> dict[str, Any]:
    """The runtime, its version, the kernel path it picks on this CPU, and the thread count."""
    kernel: str | None = None
    if backend == "torch":
        import torch

        kernel = f"torch cpu capability {torch.backends.cpu.get_cpu_capability()}"
    elif backend == "onnxruntime":
        try:
            import onnxruntime as ort

            # MLAS picks its kernels from cpuid (the `isa` field); the provider is what we choose
            kernel = "CPUExecutionProvider (MLAS, cpuid dispatch)" if "CPUExecutionProvider" in \
                ort.get_available_providers() else None
        except ImportError:
            kernel = None
    elif backend == "tflite":
        kernel = "XNNPACK delegate (default in the interpreter)"
    return {"backend": backend, "version": version, "kernel_path": kernel, "threads": int(threads)}


def fingerprint(backend: str | None = None, threads: int | None = None, version: str | None = None
                ) -> dict[str, Any]:
    """This machine's fingerprint; with `backend`, also the runtime's (recorded in a table).
    `version`: the runtime's, when already known (default: asked of the installed runtime)."""
    out: dict[str, Any] = {"version": FINGERPRINT_VERSION, **cpu_fingerprint(),
                           "os": f"{platform.system()} {platform.release()}", "machine": platform.machine(),
                           "python": platform.python_version(), "numpy": np.__version__}
    if backend is not None:
        if version is None:
            from nas._device._runtimes import runtime_version

            version = runtime_version(backend)
        out["runtime"] = runtime_fingerprint(backend, threads or 1, version)
    return out


@dataclass(frozen=True)
class FieldDiff:
    """One field in which a table's fingerprint and this machine's differ."""

    field: str
    table: Any
    here: Any
    major: bool

    def describe(self) -> str:
        if self.field == "isa" and isinstance(self.table, list) and isinstance(self.here, list):
            plus = sorted(set(self.here) - set(self.table))
            minus = sorted(set(self.table) - set(self.here))
            parts = ([f"+{', +'.join(plus)} here"] if plus else []) + ([f"-{', -'.join(minus)} here"] if minus else [])
            return f"isa ({'; '.join(parts)})"
        if self.table is None:
            return f"{self.field} (unknown in the table)"
        return f"{self.field} ({self.table} in the table, {self.here} here)"


def _flatten(fp: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in fp.items():
        if k == "version":
            continue
        if isinstance(v, Mapping) and k in ("cpu", "runtime"):
            for kk, vv in v.items():
                out[f"{k}.{kk}"] = vv
        else:
            out[k] = v
    return out


def fingerprint_diff(table: Mapping[str, Any] | None, here: Mapping[str, Any]) -> list[FieldDiff]:
    """The fields of `here` in which `table` differs (a field unknown in the table differs: it
    cannot be confirmed). Fields only `table` has are not compared."""
    t, h = _flatten(table or {}), _flatten(here)
    diffs = []
    for field, value in h.items():
        if field == "cpu.usable_cpus":
            continue  # affinity of this process, not a property of the machine
        if t.get(field) != value:
            diffs.append(FieldDiff(field, t.get(field), value, field in MAJOR_FIELDS))
    return diffs


def describe(fp: Mapping[str, Any] | None) -> str:
    """One line: CPU name, family/model, cores, L3, vector ISA, runtime."""
    if not fp:
        return "unknown machine"
    cpu = fp.get("cpu") or {}
    caches = fp.get("caches") or {}
    isa = fp.get("isa")
    vec = "unknown ISA" if isa is None else ("AMX" if "amx_tile" in isa else "AVX-512" if "avx512f" in isa
                                             else "AVX2" if "avx2" in isa else "SVE" if "sve" in isa
                                             else "NEON" if "asimd" in isa else "no SIMD flags")

    def unk(v: Any) -> str:
        return "?" if v is None else str(v)

    text = (f"{unk(cpu.get('model_name'))} ({unk(cpu.get('vendor'))} family {unk(cpu.get('family'))} model "
            f"{unk(cpu.get('model'))}), {unk(cpu.get('logical_cpus'))} CPUs, L3 {unk(caches.get('L3'))}, {vec}")
    rt = fp.get("runtime")
    if rt:
        text += f"; {unk(rt.get('version'))}, {unk(rt.get('threads'))} thread(s)"
    return text
