"""Build a latency table on this machine: export every layer of a space, time it in ≥3 passes.

Resumable: the work folder next to the output (``<out>.work/``) keeps the exported models and the
pass files, each appended one entry at a time; kill the build at any point and run the same command
again to continue. The table files are written (atomically) only once every pass is done, and the
work folder is removed after that.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from nas import __version__
from nas._device import device_info, fingerprint, measure, Protocol, runtime_version, work_lock
from nas.latency._backends import (BackendError, backend_unavailable_reason, check_backend, check_dtype,
                                   open_torch_entry)
from nas.latency._table import FORMAT_VERSION, LatencyTable, today
from nas.latency._work import key_entries, write_work

if TYPE_CHECKING:  # pragma: no cover
    from nas._space import SearchSpace


def work_folder(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".work")


def space_info(space: "SearchSpace", resolutions: Iterable[int] | None) -> dict[str, Any]:
    return {"name": space.name, "source": space.source, "resolutions": list(resolutions or space.resolutions),
            "num_classes": space.num_classes, "in_channels": space.in_channels, "width_mult": space.width_mult}


def table_metadata(backend: str, threads: int, device_name: str, protocol: Protocol,
                   backend_options: Mapping[str, Any], info: Mapping[str, Any] | None = None,
                   dtype: str = "float32", quantization: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A table's metadata; `quantization` (the `nas.export.QuantSettings` dict) only for int8."""
    version = runtime_version(backend)
    quant = {} if dtype == "float32" else {"quantization": dict(quantization or {})}
    return {"format_version": FORMAT_VERSION, "device_name": device_name, "backend": backend,
            "backend_version": version, "backend_options": dict(backend_options),
            "threads": threads, "batch_size": 1, "dtype": dtype, **quant, "device": device_info(),
            "fingerprint": fingerprint(backend, threads, version), "date": today(),
            "tool_version": f"hwnas {__version__}", "protocol": protocol.to_dict(), **dict(info or {})}


def quantization_of(dtype: str, quantization: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The quantization settings of a `dtype` table: None for float32; for int8 `quantization` or the
    defaults (`nas.export.INT8`), as a dict."""
    if dtype == "float32":
        return None
    from nas.export import INT8, QuantSettings

    return (QuantSettings.from_dict(quantization) if quantization else INT8).to_dict()


NOISY_CHOICES = ("warn", "wait", "more-passes", "abort")


class NoisyMachineError(BackendError):
    """The machine is too noisy for a trustworthy table (and the build was told to stop)."""


def build_table(space: "SearchSpace", backend: str, out: str | Path, *, resolutions: Iterable[int] | None = None,
                threads: int = 1, device_name: str = "unnamed-device", protocol: Protocol | None = None,
                channels_last: bool = False, progress: bool = True, keep_work: bool = False,
                canaries: bool = True, if_noisy: str = "warn", wait_minutes: float = 10.0,
                log: Callable[[str], None] = print, dtype: str = "float32",
                quantization: Mapping[str, Any] | None = None) -> LatencyTable:
    """Measure every layer key of `space` at `resolutions` with `backend` and save the table at `out`.

    First the machine's noise floor is measured (`canaries`: on); when it is above `NOISY_PCT`,
    `if_noisy` says what to do: warn and go on, wait (re-measure every 30 s, up to `wait_minutes`)
    until it is quiet, take more passes per entry, or abort. After the build the canaries are
    measured and stored in the metadata (see `nas.latency._check`). `dtype` int8 (onnxruntime only)
    times each layer statically quantized with `quantization` (default `nas.export.INT8`); the
    metadata records both, and whole networks (canaries, calibration, validation) are quantized alike."""
    from nas.latency._check import NOISY_PCT, measure_canaries, noise_floor

    check_backend(backend)
    check_dtype(backend, dtype)
    quant = quantization_of(dtype, quantization)
    reason = backend_unavailable_reason(backend)
    if reason:
        raise BackendError(f"cannot build a {backend} table here: {reason}")
    if if_noisy not in NOISY_CHOICES:
        raise BackendError(f"if_noisy={if_noisy!r} is not one of {list(NOISY_CHOICES)}")
    protocol = protocol or Protocol()
    resolutions = list(resolutions or space.resolutions)
    options = {"channels_last": channels_last} if backend == "torch" else {}
    work = work_folder(out)
    work.mkdir(parents=True, exist_ok=True)
    with work_lock(work):  # held from the noise floor to the canaries: a second build refuses, naming this one
        started = time.perf_counter()
        out = Path(out)
        info = {"space": space_info(space, resolutions)}
        probe = LatencyTable({}, table_metadata(backend, threads, device_name, protocol, options, info, dtype, quant),
                             out)
        noise = None
        if canaries:
            noise = noise_floor(probe, space)
            deadline = time.monotonic() + wait_minutes * 60
            while noise > NOISY_PCT and if_noisy == "wait" and time.monotonic() < deadline:
                log(f"build: the machine is noisy ({noise:.1f}% spread between passes > {NOISY_PCT:g}%); waiting 30 s")
                time.sleep(30)
                noise = noise_floor(probe, space)
            if noise > NOISY_PCT:
                advice = {"warn": "going on; expect flagged entries (--if-noisy wait|more-passes|abort to change this)",
                          "wait": f"still noisy after {wait_minutes:g} min; going on",
                          "more-passes": "taking 5 passes per entry and 4 re-measuring passes",
                          "abort": "stopping"}[if_noisy]
                log(f"build: this machine is noisy now: repeated passes of the same network spread by a median "
                    f"{noise:.1f}% (a trustworthy table needs < {NOISY_PCT:g}%); {advice}")
                if if_noisy == "abort":
                    raise NoisyMachineError(f"the machine is too noisy for a latency table ({noise:.1f}% spread "
                                            f"between passes > {NOISY_PCT:g}%); build again when it is quiet")
                if if_noisy == "more-passes":
                    protocol = Protocol(**{**protocol.to_dict(), "passes": max(protocol.passes, 5),
                                           "remeasure_passes": max(protocol.remeasure_passes, 4)})
            elif progress:
                log(f"build: noise floor {noise:.1f}% (spread of repeated passes; < {NOISY_PCT:g}% is quiet)")
        keys = space.all_block_keys(resolutions)
        resumed = (work / "manifest.json").exists()
        entries = key_entries(keys, backend, dtype, quant)
        write_work(work, backend, entries, protocol, info, options, progress)
        results = measure(work, threads, progress, open_torch_entry)
        by_id = {e["id"]: k for e, k in zip(entries, keys)}
        table = LatencyTable({by_id[i]: r for i, r in results.items()},
                             table_metadata(backend, threads, device_name, protocol, options, info, dtype, quant))
        summary = table.summary()
        table.metadata["build"] = {"seconds": round(time.perf_counter() - started, 1), "resumed": resumed,
                                   "remeasured": summary["remeasured"], "flagged": summary["flagged"],
                                   "noise_pct_at_start": None if noise is None else round(noise, 3)}
        table.save(out)
        if not keep_work:
            shutil.rmtree(work, ignore_errors=True)
        if canaries:
            table.metadata["canaries"] = measure_canaries(table, space, progress=progress)
            table.save(out)
        return table
