"""Latency sources for evaluators and budgets: latency tables, or a MACs proxy (a stand-in).

A source has a `name` (the key in ``Result.latency_ms``), ``predict_many(archs) -> ms`` and
``predict_rows(rows) -> ms`` (rows of `nas.Codec`). `TableLatency` adapts a
`nas.latency.LatencyTable` (one per target device), which checks that it covers the space.
`MacsProxy` is NOT a latency: MACs scaled by an assumed throughput, for tests and for spaces
no table was built for; its name says so.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from nas._arch import Arch, key_macs, key_params
from nas._codec import Codec
from nas._errors import HwnasError
from nas._space import SearchSpace


class LatencyError(HwnasError):
    """A latency table does not fit the search space (or is unusable)."""


class LatencySource(Protocol):
    name: str

    def predict_many(self, archs: Sequence[Arch]) -> np.ndarray: ...

    def predict_rows(self, rows: np.ndarray) -> np.ndarray: ...


def arch_macs(arch: Arch, space: SearchSpace) -> int:
    """MACs of `arch` in `space` (same figure as `nas.count_macs`, cached per layer)."""
    return sum(key_macs(k) for k in space.block_keys(arch))


def arch_params(arch: Arch, space: SearchSpace) -> int:
    """Parameters of `arch` in `space` (same figure as `nas.count_params`, cached per layer)."""
    return sum(key_params(k) for k in space.block_keys(arch))


class MacsProxy:
    """A stand-in for latency when no table exists: ``MACs / gmacs_per_s``, named ``macs-proxy``."""

    def __init__(self, space: SearchSpace, gmacs_per_s: float = 1.0, name: str = "macs-proxy") -> None:
        if gmacs_per_s <= 0:
            raise LatencyError(f"gmacs_per_s must be positive, got {gmacs_per_s}")
        self.space = space
        self.gmacs_per_s = float(gmacs_per_s)
        self.name = name
        self._cache: dict[Arch, float] = {}

    def predict_many(self, archs: Sequence[Arch]) -> np.ndarray:
        out = np.empty(len(archs))
        for i, arch in enumerate(archs):
            ms = self._cache.get(arch)
            if ms is None:
                ms = sum(key_macs(k) for k in self.space.block_keys(arch)) / (self.gmacs_per_s * 1e9) * 1e3
                if len(self._cache) < 500_000:
                    self._cache[arch] = ms
            out[i] = ms
        return out

    def predict_rows(self, rows: np.ndarray) -> np.ndarray:
        """`predict_many` of the archs of rows of option indices (`nas.Codec` of the space)."""
        return self.predict_many(Codec.of(self.space).decode_many(rows))

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "macs-proxy (not a measured latency)", "gmacs_per_s": self.gmacs_per_s}


class TableLatency:
    """Adapter over a `nas.latency.LatencyTable`: vectorized predictions for archs of `space`.

    `check` (run at construction) raises the table's `TableError` naming the block keys of the
    space it lacks (`LatencyTable.check_covers`, the one coverage check).
    """

    def __init__(self, table: Any, space: SearchSpace, name: str | None = None, check: bool = True) -> None:
        self.table = table
        self.space = space
        self._codec = Codec.of(space)
        self.name = name or str(getattr(table, "name", None) or getattr(table, "path", "table"))
        if check:
            self.check()

    def check(self) -> None:
        self.table.check_covers(self.space)

    def predict_rows(self, rows: np.ndarray) -> np.ndarray:
        """Latency (ms) of rows of option indices (`nas.Codec` of the space)."""
        return np.asarray(self.table.predict_rows(rows, self.space), dtype=float)

    def predict_many(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.predict_rows(self._codec.encode_many(archs))

    def metadata(self) -> dict[str, Any]:
        meta = getattr(self.table, "metadata", None)
        if callable(meta):
            meta = meta()
        if hasattr(meta, "to_dict"):
            meta = meta.to_dict()
        return {"name": self.name, "kind": "latency table", **(dict(meta) if isinstance(meta, dict) else {})}
