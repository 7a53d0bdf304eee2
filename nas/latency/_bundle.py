"""Bundles for devices without torch: every layer of a space as a model file, a manifest, and the
torch-free runner code, in one zip (`nas.device_runner` measures it; `import_measured` reads back)."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from nas import __version__
from nas._atomic import atomic_path
from nas._device import FILE_BACKENDS, Protocol
from nas.latency._backends import BackendError
from nas.latency._build import space_info
from nas.latency._table import LatencyTable, TableError
from nas.latency._work import key_entries, write_work

if TYPE_CHECKING:  # pragma: no cover
    from nas._space import SearchSpace

RUNNER_FILES = ("nas/__init__.py", "nas/_errors.py", "nas/_atomic.py", "nas/_arch.py", "nas/device_runner.py",
                "nas/_device/__init__.py", "nas/_device/_files.py", "nas/_device/_fingerprint.py", "nas/_device/_runner.py",
                "nas/_device/_runtimes.py", "nas/_device/_timing.py")
"""The torch-free code a bundle carries, so ``PYTHONPATH=bundle.zip python -m nas.device_runner`` works."""


def write_bundle(space: "SearchSpace", backend: str, out: str | Path, resolutions: Iterable[int] | None = None,
                 threads: int = 1, protocol: Protocol | None = None, progress: bool = True) -> Path:
    """Export every layer key of `space` for `backend` into the zip `out` (written atomically)."""
    if backend not in FILE_BACKENDS:
        raise BackendError(f"a bundle needs a file backend ({', '.join(FILE_BACKENDS)}), got {backend!r}")
    out = Path(out)
    resolutions = list(resolutions or space.resolutions)
    keys = space.all_block_keys(resolutions)
    entries = key_entries(keys, backend)
    bundle_id = hashlib.sha1("".join(e["id"] for e in entries).encode() + backend.encode()).hexdigest()[:12]
    info = {"space": space_info(space, resolutions), "threads": threads, "bundle_id": bundle_id,
            "tool_version": __version__}
    work = out.with_name(out.name + ".work")  # resumable export
    write_work(work, backend, entries, protocol or Protocol(), info, {}, progress)
    root = resources.files("nas").joinpath("..")
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(work / "manifest.json", "manifest.json")
        for e in entries:
            z.write(work / e["file"], e["file"])
        for name in RUNNER_FILES:
            z.writestr(name, root.joinpath(name).read_text())
    shutil.rmtree(work, ignore_errors=True)
    return out


def import_measured(measured: str | Path, out: str | Path, device_name: str | None = None,
                    space: "SearchSpace | None" = None) -> LatencyTable:
    """Read a table measured by the device runner, check it covers its space, save it at `out`."""
    table = LatencyTable.load(measured)
    if space is None:
        from nas.latency._validate import space_of

        space = space_of(table)
    try:
        table.check_covers(space)
    except TableError as err:
        raise TableError(f"measured table {str(measured)!r} is incomplete: {err}") from None
    if device_name:
        table.metadata["device_name"] = device_name
    table.metadata["imported_from"] = Path(measured).name
    table.save(out)
    return table
