"""Work folders: the entries to time (layer keys or whole archs), their model files and a manifest.

The host build, the remote bundle and end-to-end validation all go through one folder layout,
measured by `nas._device` (the code a device runs too).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from nas._arch import Arch, BlockKey
from nas._atomic import atomic_write_json
from nas._device import MANIFEST, MANIFEST_FORMAT, Protocol
from nas.latency._backends import check_backend, check_dtype, model_file, prepare


def key_id(key: BlockKey) -> str:
    """A stable id of a key (same key, same id, across runs and machines)."""
    return "k" + hashlib.sha1(json.dumps(key.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def arch_id(arch: Arch, num_classes: int, in_channels: int) -> str:
    text = json.dumps({"arch": arch.to_dict(), "nc": num_classes, "ic": in_channels}, sort_keys=True)
    return "a" + hashlib.sha1(text.encode()).hexdigest()[:12]


def dtype_id(base_id: str, dtype: str = "float32") -> str:
    """The work-folder id of an entry of `dtype`: the key's or arch's id, suffixed for every dtype but
    float32 (``k0123abcd4567-int8``), so the model files of two dtypes never share a name."""
    return base_id if dtype == "float32" else f"{base_id}-{dtype}"


def base_id(entry_id: str) -> str:
    """The key's or arch's id of a work-folder id (`dtype_id` undone)."""
    return entry_id.split("-", 1)[0]


def _dtype_fields(dtype: str, quantization: Mapping[str, Any] | None) -> dict[str, Any]:
    return {} if dtype == "float32" else {"dtype": dtype, "quantization": dict(quantization or {})}


def key_entries(keys: Iterable[BlockKey], backend: str, dtype: str = "float32",
                quantization: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    out = []
    for key in keys:
        i = dtype_id(key_id(key), dtype)
        out.append({"id": i, "name": key.short(), "key": key.to_dict(), "file": model_file(backend, i),
                    "input_shape": [1, key.in_channels, key.in_hw, key.in_hw], **_dtype_fields(dtype, quantization)})
    return out


def arch_entries(archs: Iterable[Arch], num_classes: int, in_channels: int, backend: str, dtype: str = "float32",
                 quantization: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    out, seen = [], set()
    for arch in archs:
        i = dtype_id(arch_id(arch, num_classes, in_channels), dtype)
        if i in seen:
            continue
        seen.add(i)
        out.append({"id": i, "name": arch.short(), "arch": arch.to_dict(), "num_classes": num_classes,
                    "in_channels": in_channels, "file": model_file(backend, i),
                    "input_shape": [1, in_channels, arch.resolution, arch.resolution],
                    **_dtype_fields(dtype, quantization)})
    return out


def write_work(folder: str | Path, backend: str, entries: Sequence[Mapping[str, Any]], protocol: Protocol,
               info: Mapping[str, Any] | None = None, backend_options: Mapping[str, Any] | None = None,
               progress: bool = True) -> Path:
    """Export every entry's model file (skipping those already there) and write the manifest.

    If the folder already holds a manifest for other entries, backend or protocol, the passes it
    holds are of no use: an error says so rather than mixing measurements.
    """
    from nas._device import RunnerError, read_manifest

    check_backend(backend)
    for dtype in sorted({e.get("dtype", "float32") for e in entries}):
        check_dtype(backend, dtype)
    folder = Path(folder)
    manifest = {"format": MANIFEST_FORMAT, "backend": backend, "backend_options": dict(backend_options or {}),
                "protocol": protocol.to_dict(), "info": dict(info or {}), "entries": [dict(e) for e in entries]}
    if (folder / MANIFEST).exists():
        old = read_manifest(folder)
        if any(old.get(f) != manifest[f] for f in ("backend", "backend_options", "protocol", "entries")):
            raise RunnerError(f"work folder {str(folder)!r} holds an unfinished run with other settings; "
                              "delete it to start over")
    folder.mkdir(parents=True, exist_ok=True)
    todo = [e for e in entries if e.get("file") and not (folder / e["file"]).exists()]
    if todo:
        _export(backend, todo, folder, progress)
    atomic_write_json(folder / MANIFEST, manifest)
    return folder


PARALLEL_EXPORT = {"tflite"}
"""Backends whose converter is slow enough (litert-torch: 5-10 s per network at 224 px, one core) to
convert in one process per core (so are int8 entries: quantizing takes 0.3-2 s per model). Nothing is timed while models are written, so this cannot disturb
a measurement."""


PARALLEL_INT8_MIN = 32
"""int8 entries are exported in one process per core from this many on (below it, starting the
processes, each importing torch, costs more than it saves)."""


def _export(backend: str, todo: Sequence[Mapping[str, Any]], folder: Path, progress: bool) -> None:
    from tqdm import tqdm

    workers = min(len(todo), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    bar = tqdm(total=len(todo), desc=f"export {backend}", unit="model", disable=not progress, leave=False)
    slow = backend in PARALLEL_EXPORT or (len(todo) >= PARALLEL_INT8_MIN
                                          and any(e.get("dtype", "float32") != "float32" for e in todo))
    if not slow or workers < 2:
        for entry in todo:
            prepare(backend, entry, folder)
            bar.update()
    else:  # spawn, not fork: a forked child of a process that has run torch can hang in its thread pool
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for future in as_completed([pool.submit(prepare, backend, entry, folder) for entry in todo]):
                future.result()
                bar.update()
    bar.close()
