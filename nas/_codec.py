"""The one mapping between archs and numbers: option-index rows, one-hot vectors, choice dicts.

A row holds one option index per named choice of `SearchSpace.dims` (in that order). Strategies
keep populations as ``(n, len(dims))`` int matrices so that sampling, mutation and crossover of a
whole generation are single numpy operations; latency tables and accuracy predictors take the same
rows. Values match options by `nas._arch.option_index`.
"""

from __future__ import annotations

import re
import weakref
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from nas._arch import Arch, option_index

if TYPE_CHECKING:  # pragma: no cover
    from nas._space import SearchSpace

_SHARED: "weakref.WeakKeyDictionary[SearchSpace, Codec]" = weakref.WeakKeyDictionary()
_LAYER_DIM = re.compile(r"^s(\d+)\.l(\d+)\.(\w+)$")


class Codec:
    """Maps archs of `space` to and from rows of option indices (order of `space.dims`).

    Rows are canonical: choices of layers beyond a stage's depth are reset to option 0, so one
    arch has exactly one row (what `space.encode` gives). Use `Codec.of(space)` to share one codec
    (and its caches) between a strategy, its evaluator and latency sources.
    """

    @classmethod
    def of(cls, space: "SearchSpace") -> "Codec":
        """The codec of `space`, shared (a cache keyed by the space object; never changes results)."""
        codec = _SHARED.get(space)
        if codec is None:
            codec = _SHARED[space] = cls(space)
        return codec

    def __init__(self, space: "SearchSpace") -> None:
        self.space = space
        self.dims = space.dims
        self.names: list[str] = list(self.dims)
        self.options: list[tuple] = [tuple(v) for v in self.dims.values()]
        self.sizes = np.array([len(o) for o in self.options], dtype=np.int64)
        self._cache: dict[Arch, np.ndarray] = {}
        self._archs: dict[bytes, Arch] = {}
        self._setup_canonical()

    def _setup_canonical(self) -> None:
        """Per-layer columns and the depth that activates them; whether the depth rule is exact."""
        col = {n: k for k, n in enumerate(self.names)}
        layer_cols, layer_idx, depth_vals = [], [], []
        for k, name in enumerate(self.names):
            m = _LAYER_DIM.match(name)
            if not m:
                continue
            stage, layer = int(m.group(1)), int(m.group(2))
            depth_name = f"s{stage}.depth"
            if depth_name in col:
                depth_vals.append((col[depth_name], np.array(self.dims[depth_name], dtype=np.int64)))
            else:
                depth_vals.append((None, int(self.space.stages[stage].options("depth")[0])))
            layer_cols.append(k)
            layer_idx.append(layer)
        self._layer_cols, self._layer_idx, self._depth_of = layer_cols, layer_idx, depth_vals
        # the depth rule is all `space.encode` does unless a stage chooses skip or width (aliasing)
        self._rule_exact = not any(re.match(r"^s\d+\.(skip|width)$", n) for n in self.names)

    def active(self, rows: np.ndarray) -> np.ndarray:
        """Bool matrix like `rows`: whether each choice exists (False: a layer beyond its stage's depth)."""
        rows = np.atleast_2d(np.asarray(rows, dtype=np.int64))
        out = np.ones(rows.shape, dtype=bool)
        for k, layer, (dcol, dvals) in zip(self._layer_cols, self._layer_idx, self._depth_of):
            out[:, k] = (dvals[rows[:, dcol]] if dcol is not None else dvals) > layer
        return out

    def canonical(self, rows: np.ndarray) -> np.ndarray:
        """Rows with the choices of inactive layers reset (what `encode(decode(row))` gives)."""
        rows = np.array(rows, dtype=np.int64, copy=True)
        single = rows.ndim == 1
        rows = np.atleast_2d(rows)
        rows = np.where(self.active(rows), rows, 0)
        if not self._rule_exact:
            rows = np.stack([self._slow_encode(self._decode_raw(r)) for r in rows])
        return rows[0] if single else rows

    @property
    def ndims(self) -> int:
        return len(self.names)

    def encode(self, arch: Arch) -> np.ndarray:
        """The option-index row of `arch` (raises `ArchError` when it is outside the space)."""
        row = self._cache.get(arch)
        if row is None:
            row = self._slow_encode(arch)
            row.setflags(write=False)
            if len(self._cache) < 500_000:
                self._cache[arch] = row
        return row

    def _slow_encode(self, arch: Arch) -> np.ndarray:
        return self.row_from_choices(self.space.encode(arch))

    def _decode_raw(self, row: Sequence[int] | np.ndarray) -> Arch:
        return self.space.decode(self.choices(row))

    def encode_many(self, archs: Sequence[Arch | Mapping[str, Any]]) -> np.ndarray:
        """Rows of many archs (or `space.encode`-style dicts, taken as they are)."""
        archs = list(archs)
        if not archs:
            return np.zeros((0, self.ndims), dtype=np.int64)
        return np.stack([self.encode(a) if isinstance(a, Arch) else self.row_from_choices(a) for a in archs])

    def decode(self, row: Sequence[int] | np.ndarray) -> Arch:
        return self.decode_many(np.asarray(row, dtype=np.int64)[None])[0]

    def decode_many(self, rows: np.ndarray) -> list[Arch]:
        """Archs of many rows (canonicalized together; decoded once per distinct arch)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return []
        canon = self.canonical(rows)
        out = []
        for row in canon:
            key = row.tobytes()
            arch = self._archs.get(key)
            if arch is None:
                arch = self._decode_raw(row)
                row = row.copy()
                row.setflags(write=False)
                if len(self._archs) < 500_000:
                    self._cache.setdefault(arch, row)
                    self._archs[key] = arch
            out.append(arch)
        return out

    def choices(self, row: Sequence[int] | np.ndarray) -> dict:
        """The `space.encode`-style dict of a row."""
        return {n: o[int(i)] for n, o, i in zip(self.names, self.options, row)}

    def row_from_choices(self, choices: Mapping[str, Any]) -> np.ndarray:
        """The row of a `space.encode`-style dict (`KeyError`/`ValueError` naming a bad choice)."""
        row = np.zeros(self.ndims, dtype=np.int64)
        for k, (name, opts) in enumerate(zip(self.names, self.options)):
            if name not in choices:
                raise KeyError(f"choices lack {name!r} (space {self.space.name!r})")
            index = option_index(opts, choices[name])
            if index is None:
                raise ValueError(f"{name}={choices[name]!r} is not one of {list(opts)}")
            row[k] = index
        return row

    # ------------------------------------------------------------------ vectorized operators
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` rows, every choice uniform and independent."""
        return np.floor(rng.random((n, self.ndims)) * self.sizes).astype(np.int64)

    def mutate(self, rows: np.ndarray, rng: np.random.Generator, prob: float) -> np.ndarray:
        """Resample each entry with probability `prob` (uniform over its options)."""
        fresh = self.sample(rng, len(rows))
        return np.where(rng.random(rows.shape) < prob, fresh, rows)

    def crossover(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Each entry taken from `a` or `b` with equal probability."""
        return np.where(rng.random(a.shape) < 0.5, a, b)

    def one_hot(self, rows: np.ndarray) -> np.ndarray:
        """float32 ``(n, sum of option counts)``: one block per choice, e.g. for predictors; the
        blocks of layers beyond their stage's depth are all zeros (their choices do not exist)."""
        rows = np.atleast_2d(np.asarray(rows, dtype=np.int64))
        offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        out = np.zeros((len(rows), int(self.sizes.sum())), dtype=np.float32)
        out[np.arange(len(rows))[:, None], rows + offsets] = self.active(rows)
        return out

    def ordinal(self, rows: np.ndarray) -> np.ndarray:
        """Each choice's option index scaled to [0, 1] (0 for single-option choices)."""
        return rows / np.maximum(self.sizes - 1, 1)

