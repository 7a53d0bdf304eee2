"""Time layers a table lacks (pruned widths off the space's grid) and add them to it.

`time_keys` exports the missing keys with the table's backend, dtype and quantization and times them
with its threads and protocol (the same work-folder machinery as a build). The table was measured
earlier, perhaps on a day the machine ran faster or slower, so `references` (keys the table holds)
are timed in the same passes; the new entries are scaled by the median of table / now over them,
so they sit on the table's scale, and the factor is recorded in ``metadata["extended"]``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable

import numpy as np

from nas._arch import BlockKey
from nas._device import Protocol, measure
from nas.latency._backends import open_torch_entry
from nas.latency._table import LatencyTable, today
from nas.latency._work import key_entries, write_work

SCALED = ("latency_ms", "mean_ms", "std_ms", "p90_ms")


def time_keys(table: LatencyTable, keys: Iterable[BlockKey], work: str | Path,
              references: Iterable[BlockKey] = (), progress: bool = False) -> dict[BlockKey, float]:
    """Time the `keys` `table` lacks and add them (scaled to the table by `references`); returns
    the latency (ms) the table now holds for every key asked for."""
    keys = list(dict.fromkeys(keys))
    missing = [k for k in keys if k not in table]
    if missing:
        refs = [k for k in dict.fromkeys(references) if k in table]
        meta = table.metadata
        todo = missing + refs
        entries = key_entries(todo, meta["backend"], table.dtype, meta.get("quantization"))
        work = Path(work)
        shutil.rmtree(work, ignore_errors=True)  # a half-run folder for other keys would refuse these
        write_work(work, meta["backend"], entries, Protocol.from_dict(meta["protocol"]),
                   {"what": "extend"}, meta.get("backend_options", {}), progress)
        results = measure(work, int(meta["threads"]), progress, open_torch_entry)
        shutil.rmtree(work, ignore_errors=True)
        stats = {k: results[e["id"]] for k, e in zip(todo, entries)}
        ratios = [table.lookup_ms(k) / stats[k]["latency_ms"] for k in refs]
        factor = float(np.median(ratios)) if ratios else 1.0
        added = {k: {**stats[k], **{c: stats[k][c] * factor for c in SCALED}} for k in missing}
        table.add(added, {"date": today(), "entries": len(added), "references": len(refs),
                          "drift_factor": round(factor, 4),
                          "note": "timed after the build; scaled by the median table/now ratio of the references"})
    return {k: table.lookup_ms(k) for k in keys}


__all__ = ["time_keys"]
