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
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from nas import __version__
from nas._device._runner import measure
from nas._device._runtimes import device_info, runtime_version
from nas._device._timing import Protocol
from nas.latency._backends import BackendError, backend_unavailable_reason, check_backend
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
                   backend_options: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "device_name": device_name, "backend": backend,
            "backend_version": runtime_version(backend), "backend_options": dict(backend_options),
            "threads": threads, "batch_size": 1, "dtype": "float32", "device": device_info(), "date": today(),
            "tool_version": f"hwnas {__version__}", "protocol": protocol.to_dict(), **dict(info or {})}


def build_table(space: "SearchSpace", backend: str, out: str | Path, *, resolutions: Iterable[int] | None = None,
                threads: int = 1, device_name: str = "unnamed-device", protocol: Protocol | None = None,
                channels_last: bool = False, progress: bool = True, keep_work: bool = False) -> LatencyTable:
    """Measure every layer key of `space` at `resolutions` with `backend` and save the table at `out`."""
    check_backend(backend)
    reason = backend_unavailable_reason(backend)
    if reason:
        raise BackendError(f"cannot build a {backend} table here: {reason}")
    protocol = protocol or Protocol()
    resolutions = list(resolutions or space.resolutions)
    options = {"channels_last": channels_last} if backend == "torch" else {}
    started = time.perf_counter()
    keys = space.all_block_keys(resolutions)
    work = work_folder(out)
    resumed = (work / "manifest.json").exists()
    entries = key_entries(keys, backend)
    write_work(work, backend, entries, protocol, {"space": space_info(space, resolutions)}, options, progress)
    results = measure(work, threads, progress)
    by_id = {e["id"]: k for e, k in zip(entries, keys)}
    table = LatencyTable({by_id[i]: r for i, r in results.items()},
                         table_metadata(backend, threads, device_name, protocol, options,
                                        {"space": space_info(space, resolutions)}))
    summary = table.summary()
    table.metadata["build"] = {"seconds": round(time.perf_counter() - started, 1), "resumed": resumed,
                               "remeasured": summary["remeasured"], "flagged": summary["flagged"]}
    table.save(out)
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return table
