"""Archs as integer vectors: one option index per named choice of `SearchSpace.dims`.

Strategies keep populations as ``(n, len(dims))`` int matrices so that sampling, mutation and
crossover of a whole generation are single numpy operations; `decode` turns a row back into an
`Arch` and `encode` an arch into its row (cached, archs are hashable).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from nas._arch import Arch
from nas._space import SearchSpace


class Codec:
    """Maps archs of `space` to and from rows of option indices (order of `space.dims`)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.dims = space.dims
        self.names: list[str] = list(self.dims)
        self.options: list[tuple] = [tuple(v) for v in self.dims.values()]
        self.sizes = np.array([len(o) for o in self.options], dtype=np.int64)
        self._cache: dict[Arch, np.ndarray] = {}
        self._archs: dict[bytes, Arch] = {}

    @property
    def ndims(self) -> int:
        return len(self.names)

    def encode(self, arch: Arch) -> np.ndarray:
        """The option-index row of `arch` (raises `ArchError` when it is outside the space)."""
        row = self._cache.get(arch)
        if row is None:
            choices = self.space.encode(arch)
            row = np.array([_index(opts, choices[name]) for name, opts in zip(self.names, self.options)],
                           dtype=np.int64)
            row.setflags(write=False)
            if len(self._cache) < 200_000:
                self._cache[arch] = row
        return row

    def encode_many(self, archs: Sequence[Arch]) -> np.ndarray:
        if not archs:
            return np.zeros((0, self.ndims), dtype=np.int64)
        return np.stack([self.encode(a) for a in archs])

    def decode(self, row: Sequence[int] | np.ndarray) -> Arch:
        key = np.asarray(row, dtype=np.int64).tobytes()
        arch = self._archs.get(key)
        if arch is None:
            arch = self.space.decode({n: o[int(i)] for n, o, i in zip(self.names, self.options, row)})
            if len(self._archs) < 200_000:
                self._archs[key] = arch
        return arch

    def decode_many(self, rows: np.ndarray) -> list[Arch]:
        return [self.decode(r) for r in rows]

    def choices(self, row: Sequence[int] | np.ndarray) -> dict:
        """The `space.encode`-style dict of a row."""
        return {n: o[int(i)] for n, o, i in zip(self.names, self.options, row)}

    def row_from_choices(self, choices: dict) -> np.ndarray:
        return np.array([_index(o, choices[n]) for n, o in zip(self.names, self.options)], dtype=np.int64)

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
        """Float features (one column per option of every choice), e.g. for predictors."""
        offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        out = np.zeros((len(rows), int(self.sizes.sum())), dtype=np.float32)
        out[np.arange(len(rows))[:, None], rows + offsets] = 1.0
        return out

    def ordinal(self, rows: np.ndarray) -> np.ndarray:
        """Each choice's option index scaled to [0, 1] (0 for single-option choices)."""
        return rows / np.maximum(self.sizes - 1, 1)


def _index(options: tuple, value: object) -> int:
    for i, o in enumerate(options):
        if type(o) is type(value) and o == value:
            return i
    for i, o in enumerate(options):
        if o == value and not isinstance(o, bool) and not isinstance(value, bool):
            return i
    raise ValueError(f"{value!r} is not one of {list(options)}")
