"""The latency-table CSV layout (one column per `BlockKey` field) and its atomic writing."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import fields
from pathlib import Path
from typing import Any, Iterable, Mapping

from nas._arch import BlockKey
from nas._atomic import atomic_write, atomic_write_json

FORMAT_VERSION = 1
"""Version of the table layout (CSV columns + JSON sidecar fields)."""
KEY_COLUMNS = tuple(f.name for f in fields(BlockKey) if f.name != "mid")
STAT_COLUMNS = ("latency_ms", "mean_ms", "std_ms", "p90_ms", "count", "passes", "spread_pct",
                "remeasured", "flagged")
COLUMNS = KEY_COLUMNS + STAT_COLUMNS
"""The header of a table whose layers all sit on a space's grid."""
MID_COLUMNS = KEY_COLUMNS + ("mid",) + STAT_COLUMNS
"""The header once a table holds pruned layers (an explicit MBConv width, `BlockKey.mid`)."""
HEADERS = (COLUMNS, MID_COLUMNS)
_INT_KEY_FIELDS = {f.name for f in fields(BlockKey) if f.type in ("int", int)}


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def table_csv_text(rows: Iterable[tuple[BlockKey, Mapping[str, Any]]]) -> str:
    """The CSV text of a table: key columns then measurement columns, one row per key."""
    rows = list(rows)
    header = MID_COLUMNS if any(key.mid for key, _ in rows) else COLUMNS
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for key, stats in rows:
        kd = key.to_dict()
        cells = [_fmt(kd.get(c, 0)) for c in header[:-len(STAT_COLUMNS)]]
        writer.writerow(cells + [_fmt(stats.get(c, "")) for c in STAT_COLUMNS])
    return out.getvalue()


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def key_from_row(row: Mapping[str, str]) -> BlockKey:
    """Parse the key columns of one CSV row (raises ValueError/KeyError/ArchError on bad cells)."""
    data: dict[str, Any] = {"mid": int(row.get("mid") or 0)}
    for name in KEY_COLUMNS:
        cell = row[name]
        if name in ("kind", "op", "act"):
            data[name] = cell
        elif name == "se":
            data[name] = float(cell)
        elif name == "skip":
            data[name] = {"0": False, "1": True, "False": False, "True": True}[cell]
        else:
            data[name] = int(cell)
    return BlockKey(**data)


def sidecar_path(path: str | Path) -> Path:
    """The JSON metadata file of a table CSV: same name, ``.json``."""
    return Path(path).with_suffix(".json")


def write_table(path: str | Path, rows: Iterable[tuple[BlockKey, Mapping[str, Any]]],
                metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Write a table CSV and its JSON sidecar (each atomically, the sidecar last, carrying the CSV's
    row count and checksum so a mismatched pair is detected on load). Returns the metadata written."""
    rows = list(rows)
    text = table_csv_text(rows)
    meta = {"format_version": FORMAT_VERSION, "batch_size": 1, "dtype": "float32", **dict(metadata)}
    meta["entries"] = len(rows)
    meta["csv_sha256"] = sha256_text(text)
    atomic_write(path, text)
    atomic_write_json(sidecar_path(path), meta)
    return meta
