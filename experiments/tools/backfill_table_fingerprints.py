"""Give the tables shipped before fingerprints existed a fingerprint and canaries (run once, 2026-12-02).

Fingerprint: only what their metadata recorded (CPU model name "AMD EPYC", 2 CPUs, OS, Python,
numpy, the runtime and threads); every other field (vendor, family, model, stepping, caches, ISA,
kernel path) is null = unknown: the original machines cannot be reconstructed, and are not guessed.

Canaries: the networks of each table's committed validation run
(``experiments/benchmarks/latency_validation/<table>/validate.csv``), measured on the machine that
calibrated and validated the table with the table's protocol: the space's presets, and the first two
held-out random archs when they can be drawn again from the validation seed. Tables without a
validation run get no canaries (`nas latency check` then says so).

    .venv/bin/python experiments/tools/backfill_table_fingerprints.py
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from nas._device._fingerprint import FINGERPRINT_VERSION
from nas.latency import LatencyTable, space_of
from nas.latency._validate import random_archs
from nas.latency._work import arch_id

ROOT = Path(__file__).resolve().parents[2]
VALIDATION = ROOT / "experiments" / "benchmarks" / "latency_validation"


def legacy_fingerprint(meta: dict) -> dict:
    device = meta.get("device") or {}
    return {"version": FINGERPRINT_VERSION,
            "cpu": {"vendor": None, "family": None, "model": None, "stepping": None,
                    "model_name": device.get("cpu_model"), "logical_cpus": device.get("cpu_count"),
                    "usable_cpus": None, "hypervisor": None},
            "caches": None, "isa": None, "os": device.get("os"), "machine": device.get("machine"),
            "python": device.get("python"), "numpy": device.get("numpy"),
            "runtime": {"backend": meta["backend"], "version": meta["backend_version"], "kernel_path": None,
                        "threads": meta["threads"]},
            "reconstructed": "2026-12-02 from the metadata's 'device' field; null fields were not recorded "
                             "when the table was built and are unknown"}


def validation_canaries(table: LatencyTable) -> dict | None:
    folder = VALIDATION / table.path.stem
    if not (folder / "validate.csv").is_file():
        return None
    rows = list(csv.DictReader(open(folder / "validate.csv")))
    report = json.loads((folder / "validate.json").read_text())
    space = space_of(table)
    r = max(space.resolutions)
    by_id = {row["arch_id"]: row for row in rows}
    picked = []
    for name in space.preset_names:
        arch = space.preset(name, resolution=r)
        row = by_id.get(arch_id(arch, space.num_classes, space.in_channels))
        if row is not None and row["group"] == name:
            picked.append((name, arch, row))
    cal = table.calibration
    n_random = sum(row["group"] == "random" for row in rows)
    drawn = random_archs(space, n_random, int(report["seed"]), cal.info.get("arch_ids", []) if cal else [])
    for i, arch in enumerate(drawn[:2]):
        row = by_id.get(arch_id(arch, space.num_classes, space.in_channels))
        if row is not None and row["group"] == "random":
            picked.append((f"fixed-{i + 1}", arch, row))
    if not picked:
        return None
    date = subprocess.run(["git", "log", "-1", "--format=%cI", "--", str(folder / "validate.csv")], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
    return {"date": date or None, "passes": int(report.get("e2e_passes") or 7),
            "noise_pct": round(float(np.median([float(row["measured_spread_pct"]) for row in rows])), 3),
            "source": str((folder / "validate.csv").relative_to(ROOT)),
            "archs": [{"name": n, "id": row["arch_id"], "arch": a.to_json(), "latency_ms": float(row["measured_ms"]),
                       "spread_pct": float(row["measured_spread_pct"])} for n, a, row in picked]}


def main() -> int:
    for path in sorted((ROOT / "latency_tables").glob("*.csv")):
        table = LatencyTable.load(path)
        if "fingerprint" not in table.metadata:
            table.metadata["fingerprint"] = legacy_fingerprint(table.metadata)
        if "canaries" not in table.metadata:
            canaries = validation_canaries(table)
            if canaries:
                table.metadata["canaries"] = canaries
        table.save(path)
        c = table.metadata.get("canaries")
        print(f"{path.name:50s} canaries: {', '.join(a['name'] for a in c['archs']) if c else 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
