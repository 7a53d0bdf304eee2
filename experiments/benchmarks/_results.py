"""What every benchmark script does last: write its result rows as a CSV and say where."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Mapping, Sequence

from nas._atomic import atomic_write


def write_csv(rows: Sequence[Mapping[str, object]], out: str | Path, fieldnames: Sequence[str] | None = None) -> Path:
    """Write `rows` to `out` (columns: `fieldnames`, default the keys of the last row) atomically
    (`nas._atomic`), so an interrupted run never leaves half a CSV; print the path."""
    out = Path(out)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fieldnames or rows[-1]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out, buf.getvalue())
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
