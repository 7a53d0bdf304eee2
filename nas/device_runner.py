"""Measure a latency bundle on a device: ``python -m nas.device_runner bundle.zip --out measured.csv``.

Needs only the standard library, numpy and the bundle's runtime (onnxruntime, or a TFLite runtime:
ai-edge-litert, else tflite-runtime); no torch, no yaml. A bundle (``nas latency bundle``) carries
this runner too, so a device without hwnas can run it straight from the zip:

    PYTHONPATH=bundle.zip python -m nas.device_runner bundle.zip --out measured.csv

Every layer is timed in ≥3 passes, each in its own process, in a different random order; layers
whose passes disagree by more than 5% get two more passes. The run is resumable (work folder
``<out>.work/``). The output is a latency table (CSV + JSON sidecar); bring it back and run
``nas latency import measured.csv`` on the host.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
import zipfile
from pathlib import Path

from nas._arch import BlockKey
from nas._device import (NETWORKS, device_info, fingerprint, measure, Protocol, read_manifest, runtime_version, utc_now,
                         write_table)
from nas._errors import HwnasError


def unpack(bundle: str | Path, work: Path) -> Path:
    """Extract the bundle's manifest and models into `work` (kept across resumed runs)."""
    bundle = Path(bundle)
    if (work / "manifest.json").exists():
        return work
    if not bundle.is_file():
        raise HwnasError(f"bundle {str(bundle)!r} does not exist")
    try:
        with zipfile.ZipFile(bundle) as z:
            names = [n for n in z.namelist() if n in ("manifest.json", f"{NETWORKS}/manifest.json")
                     or n.startswith(("models/", f"{NETWORKS}/models/"))]
            if "manifest.json" not in names:
                raise HwnasError(f"{str(bundle)!r} has no manifest.json: not a hwnas latency bundle")
            tmp = work.with_name(work.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            z.extractall(tmp, names)
            tmp.replace(work)
    except zipfile.BadZipFile as err:
        raise HwnasError(f"bundle {str(bundle)!r} is not a zip file ({err})") from None
    return work


def run_bundle(bundle: str | Path, out: str | Path, threads: int | None = None, passes: int | None = None,
               device_name: str | None = None, progress: bool = True, keep_work: bool = False) -> dict:
    """Measure every entry of `bundle` and write the measured table at `out`; returns its metadata."""
    out = Path(out)
    work = unpack(bundle, out.with_name(out.name + ".work"))
    manifest = read_manifest(work)
    if passes is not None:
        protocol = Protocol.from_dict({**manifest["protocol"], "passes": passes})
        if protocol.to_dict() != manifest["protocol"]:
            import json

            manifest["protocol"] = protocol.to_dict()
            (work / "manifest.json").write_text(json.dumps(manifest, indent=2))
    threads = int(threads or manifest.get("info", {}).get("threads", 1))
    started = time.perf_counter()
    results = measure(work, threads, progress)
    rows = [(BlockKey.from_dict(e["key"]), results[e["id"]]) for e in manifest["entries"]]
    seconds = round(time.perf_counter() - started, 1)
    networks = _measure_networks(work / NETWORKS, threads, progress)
    info = manifest.get("info", {})
    metadata = {"device_name": device_name or platform.node() or "device", "backend": manifest["backend"],
                "backend_version": runtime_version(manifest["backend"]), "backend_options": {},
                "threads": threads, "dtype": info.get("dtype", "float32"),
                **({"quantization": info["quantization"]} if info.get("quantization") else {}), "device": device_info(),
                "fingerprint": fingerprint(manifest["backend"], threads),
                "date": utc_now(), "tool_version": f"hwnas device_runner {info.get('tool_version', '')}".strip(),
                "protocol": manifest["protocol"], "space": info.get("space", {}),
                "bundle": {"id": info.get("bundle_id"), "file": Path(bundle).name},
                "build": {"seconds": seconds,
                          "remeasured": sum(r["remeasured"] for r in results.values()),
                          "flagged": sum(r["flagged"] for r in results.values())}}
    if networks:
        metadata.update(networks)
    meta = write_table(out, rows, metadata)
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return meta


def _measure_networks(work: Path, threads: int, progress: bool) -> dict:
    """Measure the bundle's whole networks (canaries, calibration and held-out archs), if it has them."""
    if not (work / "manifest.json").exists():
        return {}
    manifest = read_manifest(work)
    started = time.perf_counter()
    results = measure(work, threads, progress)
    return {"networks_passes": manifest["protocol"]["passes"],
            "networks_seconds": round(time.perf_counter() - started, 1),
            "networks": [{"id": e["id"], "name": e["name"], "roles": e["roles"], "arch": e["arch"],
                          "latency_ms": results[e["id"]]["latency_ms"], "spread_pct": results[e["id"]]["spread_pct"]}
                         for e in manifest["entries"]]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nas.device_runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", help="bundle zip written by `nas latency bundle`")
    parser.add_argument("--out", required=True, help="measured table CSV to write (plus a .json sidecar)")
    parser.add_argument("--threads", type=int, default=None, help="runtime threads (default: the bundle's)")
    parser.add_argument("--passes", type=int, default=None, help="independent passes (default: the bundle's, 3)")
    parser.add_argument("--device-name", default=None, help="name recorded in the table (default: host name)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    try:
        meta = run_bundle(args.bundle, args.out, args.threads, args.passes, args.device_name, not args.quiet)
    except HwnasError as err:
        print(f"device_runner: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("device_runner: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(f"wrote {args.out}: {meta['entries']} entries, {meta['backend_version']}, {meta['threads']} thread(s), "
          f"{meta['build']['flagged']} flagged, {meta['build']['seconds']} s"
          + (f"; {len(meta['networks'])} whole networks, {meta['networks_seconds']} s" if meta.get("networks") else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
