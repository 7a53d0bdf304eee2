"""What every benchmark script does last: write its result rows as a CSV and say where."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping, Sequence


def write_csv(rows: Sequence[Mapping[str, object]], out: str | Path, fieldnames: Sequence[str] | None = None) -> Path:
    """Write `rows` to `out` (columns: `fieldnames`, default the keys of the last row) through a
    temporary file renamed into place, so an interrupted run never leaves half a CSV; print the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fieldnames or rows[-1]))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out)
    print(f"wrote {out}")
    return out


def previous_rows(out: str | Path, defaults: Mapping[str, str]) -> list[dict[str, str]]:
    """The rows of an earlier run's CSV at `out` (none if there is no file), for `--append`; columns
    added since that run are filled from `defaults` (the value the option had before it existed)."""
    out = Path(out)
    if not out.is_file():
        return []
    with out.open(newline="") as f:
        return [{**defaults, **row} for row in csv.DictReader(f)]
