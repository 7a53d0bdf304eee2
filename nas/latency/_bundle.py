"""Bundles for devices without torch: every layer of a space as a model file, a manifest, and the
torch-free runner code, in one zip (`nas.device_runner` measures it; `import_measured` reads back).

A bundle also carries whole networks (``networks/``, their own manifest, measured in
`E2E_PASSES` passes): the space's canaries, `calibration` random archs (those `calibrate` would
draw) and, when asked, `validation` held-out archs. `import_measured` stores the canaries (so
`check` compares against the device's own numbers) and fits the calibration from them;
`validate_measured` scores a table against the held-out networks the device measured.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from nas import __version__
from nas._atomic import atomic_path
from nas._arch import Arch
from nas._device import FILE_BACKENDS, NETWORKS, Protocol
from nas.latency._backends import BackendError, check_dtype
from nas.latency._build import quantization_of, space_info
from nas.latency._check import canary_archs, canary_record
from nas.latency._table import LatencyTable, TableError
from nas.latency._validate import E2E_PASSES, fit_calibration, random_archs, score
from nas.latency._work import arch_entries, arch_id, base_id, key_entries, write_work

if TYPE_CHECKING:  # pragma: no cover
    from nas._space import SearchSpace

RUNNER_FILES = ("nas/__init__.py", "nas/_errors.py", "nas/_atomic.py", "nas/_arch.py", "nas/device_runner.py",
                "nas/_device/__init__.py", "nas/_device/__main__.py", "nas/_device/_files.py", "nas/_device/_fingerprint.py", "nas/_device/_runner.py",
                "nas/_device/_runtimes.py", "nas/_device/_timing.py")
"""The torch-free code a bundle carries, so ``PYTHONPATH=bundle.zip python -m nas.device_runner`` works."""


CALIBRATION_SEED = 1000
"""The seed of a bundle's calibration archs: `nas latency calibrate`'s default, so `refit` draws them again."""
VALIDATION_SEED = 0
"""The seed of a bundle's held-out archs: `nas latency validate`'s default."""


def network_entries(space: "SearchSpace", backend: str, calibration: int, validation: int,
                    dtype: str = "float32", quantization: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The whole networks a bundle carries, each with its roles: "canary" (named as in `canary_archs`),
    "calibration" (`random_archs(space, calibration, CALIBRATION_SEED)`) and "validation" (held out:
    `random_archs(space, validation, VALIDATION_SEED)` minus the calibration archs)."""
    named: list[tuple[str, str, Arch]] = [("canary", n, a) for n, a in canary_archs(space)]
    cal = random_archs(space, calibration, CALIBRATION_SEED) if calibration else []
    named += [("calibration", a.short(), a) for a in cal]
    if validation:
        exclude = [arch_id(a, space.num_classes, space.in_channels) for a in cal]
        named += [("validation", a.short(), a) for a in random_archs(space, validation, VALIDATION_SEED, exclude)]
    entries: dict[str, dict[str, Any]] = {}
    for role, name, arch in named:
        entry = arch_entries([arch], space.num_classes, space.in_channels, backend, dtype, quantization)[0]
        entry = entries.setdefault(entry["id"], {**entry, "name": name, "roles": []})
        entry["roles"].append(role)
    return list(entries.values())


def write_bundle(space: "SearchSpace", backend: str, out: str | Path, resolutions: Iterable[int] | None = None,
                 threads: int = 1, protocol: Protocol | None = None, progress: bool = True,
                 calibration: int = 40, validation: int = 0, dtype: str = "float32",
                 quantization: Mapping[str, Any] | None = None) -> Path:
    """Export every layer key of `space` for `backend`, and the whole networks of `network_entries`,
    into the zip `out` (written atomically; the export resumes from ``<out>.work/``). `dtype` int8:
    every model statically quantized (`quantization`, default `nas.export.INT8`); the runner records
    the dtype and the settings in the measured table."""
    if backend not in FILE_BACKENDS:
        raise BackendError(f"a bundle needs a file backend ({', '.join(FILE_BACKENDS)}), got {backend!r}")
    out = Path(out)
    resolutions = list(resolutions or space.resolutions)
    keys = space.all_block_keys(resolutions)
    check_dtype(backend, dtype)
    quant = quantization_of(dtype, quantization)
    entries = key_entries(keys, backend, dtype, quant)
    bundle_id = hashlib.sha1("".join(e["id"] for e in entries).encode() + backend.encode()).hexdigest()[:12]
    info = {"space": space_info(space, resolutions), "threads": threads, "bundle_id": bundle_id,
            "tool_version": __version__, **({"dtype": dtype, "quantization": quant} if quant else {})}
    protocol = protocol or Protocol()
    work = out.with_name(out.name + ".work")  # resumable export
    write_work(work, backend, entries, protocol, info, {}, progress)
    networks = network_entries(space, backend, calibration, validation, dtype, quant)
    net_protocol = Protocol.from_dict({**protocol.to_dict(), "passes": max(protocol.passes, E2E_PASSES)})
    write_work(work / NETWORKS, backend, networks, net_protocol, {**info, "what": "whole networks"}, {}, progress)
    root = resources.files("nas").joinpath("..")
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(work / "manifest.json", "manifest.json")
        for e in entries:
            z.write(work / e["file"], e["file"])
        z.write(work / NETWORKS / "manifest.json", f"{NETWORKS}/manifest.json")
        for e in networks:
            z.write(work / NETWORKS / e["file"], f"{NETWORKS}/{e['file']}")
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
    networks = table.metadata.pop("networks", None) or []
    canaries = [n for n in networks if "canary" in n["roles"]]
    if canaries:
        table.metadata["canaries"] = canary_record(
            space, [(n["name"], Arch.from_dict(n["arch"])) for n in canaries], [n["latency_ms"] for n in canaries],
            [n["spread_pct"] for n in canaries], int(table.metadata.get("networks_passes", E2E_PASSES)))
        table.metadata["canaries"]["source"] = f"device runner ({Path(measured).name})"
    calibration = {base_id(n["id"]): n["latency_ms"] for n in networks if "calibration" in n["roles"]}
    if calibration:  # drawn again in `random_archs` order (a network can also be a canary), as `refit` does
        archs = random_archs(space, len(calibration), CALIBRATION_SEED)
        ids = [arch_id(a, space.num_classes, space.in_channels) for a in archs]
        if set(ids) != set(calibration):
            raise TableError(f"the calibration networks in {str(measured)!r} are not this space's archs from seed "
                             f"{CALIBRATION_SEED} (another space or hwnas version): bundle again")
        fit_calibration(table, space, archs, [calibration[i] for i in ids], CALIBRATION_SEED,
                        table.metadata.get("networks_passes"), table.metadata.get("fingerprint"))
    table.save(out)
    return table


def measured_networks(measured: str | Path, meta: Mapping[str, Any], role: str) -> list[Mapping[str, Any]]:
    """The whole networks with `role` that the device runner measured into `measured` (`meta`: its sidecar)."""
    found = [n for n in meta.get("networks") or [] if role in n["roles"]]
    if not found:
        raise TableError(f"{str(measured)!r} holds no {role} networks measured on the device: bundle with "
                         f"`nas latency bundle --{role} N` and run the device runner on it")
    return found


def validate_measured(table: LatencyTable, space: "SearchSpace", measured: str | Path) -> dict[str, Any]:
    """Score `table` against the held-out whole networks the device runner measured into `measured`
    (a bundle made with ``validation=N``); the report `validate` gives."""
    table.check_covers(space)
    meta = LatencyTable.load(measured).metadata
    networks = measured_networks(measured, meta, "validation")
    used = set((table.calibration.info.get("arch_ids") or []) if table.calibration else [])
    ids = [base_id(n["id"]) for n in networks]
    if used & set(ids):
        raise TableError(f"{len(used & set(ids))} of the networks in {str(measured)!r} were used to fit the "
                         f"calibration of {table.where}: they are not held out")
    archs = [Arch.from_dict(n["arch"]) for n in networks]
    report = score(table, space, archs, ["random"] * len(archs), [n["latency_ms"] for n in networks],
                   [n["spread_pct"] for n in networks], VALIDATION_SEED, meta.get("networks_passes"))
    report["measured_on"] = {"file": Path(measured).name, "device_name": meta.get("device_name"),
                             "date": meta.get("date"), "fingerprint": meta.get("fingerprint")}
    return report

