"""Vectorized latency prediction over a space's flat choices (numpy), and its expectation (torch).

A space is compiled once per table into *slots*: the stem, every (stage, layer) position up to the
stage's largest depth, and the head. A slot's latency depends on a handful of choices only (the
resolution, the width of the stage before, the stage's shared choices, the layer's own per-layer
choices, and the stage depth, which switches the layer off). Each slot gets an array with one axis
per such choice; predicting a batch of archs is then one gather per slot and a sum.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from nas._arch import Arch, ArchError, BlockKey, key_mparams
from nas._codec import Codec
from nas._errors import HwnasError

if TYPE_CHECKING:  # pragma: no cover
    from nas._space import SearchSpace


def layer_family(key: BlockKey) -> str:
    """The family a layer's weights are counted under by a calibration: "stem", "head" or the block op."""
    return key.kind if key.kind != "block" else key.op


class PredictError(HwnasError):
    """Bad input to a latency predictor (an unknown choice, a malformed probability)."""


@dataclass(frozen=True)
class Slot:
    """One layer position: the choices it depends on and its key for every combination of them."""

    name: str
    dims: tuple[str, ...]
    keys: np.ndarray  # object array of BlockKey | None (None: the layer is absent at that depth)


def space_slots(space: "SearchSpace") -> list[Slot]:
    """The slots of `space` (see the module docstring)."""
    dims = space.dims
    base = {name: opts[0] for name, opts in dims.items()}
    for i, st in enumerate(space.stages):
        if f"s{i}.depth" in dims:
            base[f"s{i}.depth"] = st.max_depth
    offsets = np.cumsum([1] + [st.max_depth for st in space.stages]).tolist()
    slots: list[Slot] = []

    def enumerate_slot(name: str, slot_dims: list[str], position: Any) -> Slot:
        shape = [len(dims[d]) for d in slot_dims]
        keys = np.empty(shape or [1], dtype=object).reshape(shape)
        for index in itertools.product(*(range(n) for n in shape)):
            choices = dict(base)
            choices.update({d: dims[d][k] for d, k in zip(slot_dims, index)})
            keys[index] = position(space.block_keys(space.decode(choices)), choices)
        return Slot(name, tuple(slot_dims), keys)

    res = ["resolution"]
    slots.append(enumerate_slot("stem", res, lambda keys, c: keys[0]))
    for i, st in enumerate(space.stages):
        prev = [f"s{i - 1}.width"] if i > 0 and f"s{i - 1}.width" in dims else []
        shared = [f"s{i}.{a}" for a in st.choices if a not in st.per_layer and a != "depth"]
        depth = [f"s{i}.depth"] if f"s{i}.depth" in dims else []
        for j in range(st.max_depth):
            own = [f"s{i}.l{j}.{a}" for a in sorted(st.per_layer)]

            # the key never depends on the depth (the base choices use the largest one); the
            # depth axis, added next, only switches the layer off
            slot = enumerate_slot(f"s{i}.l{j}", res + prev + shared + own,
                                  lambda keys, c, at=offsets[i] + j: keys[at])
            if depth:
                present = np.array([d > j for d in dims[depth[0]]])
                keys = np.empty(slot.keys.shape + (len(present),), dtype=object)
                for d, ok in enumerate(present):
                    keys[..., d] = slot.keys if ok else None
                slot = Slot(slot.name, slot.dims + tuple(depth), keys)
            slots.append(slot)
    last = len(space.stages) - 1
    head_dims = res + ([f"s{last}.width"] if f"s{last}.width" in dims else [])
    slots.append(enumerate_slot("head", head_dims, lambda keys, c: keys[-1]))
    return slots


class CompiledPredictor:
    """Per-slot latency arrays of one table over one space: fast batch prediction and expectation.

    "archs/s" of `predict_rows` counts archs given as rows of the option-index matrix of
    `nas.Codec` (what a search strategy keeps); encoding `Arch` objects is a separate, slower step.
    """

    def __init__(self, space: "SearchSpace", lookup_ms: Any) -> None:
        self.space = space
        self.codec = Codec.of(space)
        self.dim_names = self.codec.names
        self._col = {d: k for k, d in enumerate(self.dim_names)}
        self.slots = space_slots(space)
        self.latency: list[np.ndarray] = []
        self.present: list[np.ndarray] = []
        self.mparams: dict[str, list[np.ndarray]] = {}
        """Per layer family (`layer_family`), per slot: million weights of that family's layers."""
        self._cols: list[np.ndarray] = []
        self._strides: list[np.ndarray] = []
        families = sorted({layer_family(k) for slot in self.slots for k in slot.keys.reshape(-1) if k is not None})
        for slot in self.slots:
            flat = slot.keys.reshape(-1)
            lat = np.array([0.0 if k is None else lookup_ms(k) for k in flat]).reshape(slot.keys.shape)
            self.latency.append(lat)
            self.present.append(np.array([k is not None for k in flat], dtype=float).reshape(slot.keys.shape))
            for fam in families:
                self.mparams.setdefault(fam, []).append(np.array(
                    [key_mparams(k) if k is not None and layer_family(k) == fam else 0.0 for k in flat]
                ).reshape(slot.keys.shape))
            self._cols.append(np.array([self._col[d] for d in slot.dims], dtype=np.intp))
            shape = slot.keys.shape
            self._strides.append(np.array([int(np.prod(shape[k + 1:])) for k in range(len(shape))], dtype=np.intp))
        self._flat_lat = [a.reshape(-1) for a in self.latency]
        self._flat_present = [a.reshape(-1) for a in self.present]
        self._weights_cache: dict[tuple[str, ...], list[np.ndarray]] = {}
        self._folded: tuple[Any, list[np.ndarray]] | None = None

    def encode_indices(self, archs: Iterable[Arch | Mapping[str, Any]]) -> np.ndarray:
        """Archs (or `space.encode` dicts) -> codec rows (`Codec.encode_many`)."""
        try:
            return self.codec.encode_many(list(archs))
        except ArchError:
            raise
        except (KeyError, ValueError) as err:
            raise PredictError(str(err)) from None

    # ------------------------------------------------------------------ prediction
    def _flat(self, index: np.ndarray) -> Iterable[np.ndarray]:
        """Per slot, the flat position of each row in the slot's arrays."""
        index = np.asarray(index)
        if index.ndim != 2 or index.shape[1] != len(self.dim_names):
            raise PredictError(f"choice-index matrix must have shape (n, {len(self.dim_names)}), got {index.shape}")
        columns = np.ascontiguousarray(index.T, dtype=np.intp)  # one contiguous row per choice
        for cols, strides in zip(self._cols, self._strides):
            flat = columns[cols[0]] * strides[0]
            for c, st in zip(cols[1:], strides[1:]):
                flat += columns[c] * st
            yield flat

    def weights(self, families: Iterable[str] | None = None) -> list[np.ndarray]:
        """Per slot: million weights of the layers of `families` (None: every layer)."""
        key = tuple(sorted(self.mparams if families is None else set(families) & set(self.mparams)))
        if key not in self._weights_cache:
            self._weights_cache[key] = [sum((self.mparams[f][k] for f in key), np.zeros(shape)).reshape(-1)
                                        for k, shape in enumerate(a.shape for a in self.latency)]
        return self._weights_cache[key]

    def sum_and_layers(self, index: np.ndarray, families: Iterable[str] | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Summed table latency (ms), layer count and million weights (of the layers of `families`;
        None: all) of each row of a choice-index matrix."""
        n = np.asarray(index).shape[0]
        total, layers, mparams = np.zeros(n), np.zeros(n), np.zeros(n)
        for flat, lat, present, mp in zip(self._flat(index), self._flat_lat, self._flat_present,
                                          self.weights(families)):
            total += lat[flat]
            layers += present[flat]
            mparams += mp[flat]
        return total, layers, mparams

    def weights_by_family(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """Million weights of each layer family (`layer_family`) in each row of a choice-index matrix."""
        return {f: self.sum_and_layers(index, [f])[2] for f in self.mparams}

    def predict_rows(self, index: np.ndarray, calibration: Any = None) -> np.ndarray:
        """Predicted latency (ms) of each row of a choice-index matrix: the summed entries, or
        `calibration.apply` of them (folded into the per-slot arrays: one or two gathers per slot)."""
        n = np.asarray(index).shape[0]
        if calibration is None:
            per_slot = self._flat_lat
        else:
            key = (calibration.scale, calibration.per_layer_ms)
            if self._folded is None or self._folded[0] != key:
                self._folded = (key, [calibration.scale * lat + calibration.per_layer_ms * present
                                      for lat, present in zip(self._flat_lat, self._flat_present)])
            per_slot = self._folded[1]
        need_weights = calibration is not None and calibration.per_mparam_ms != 0.0
        weights = self.weights(calibration.spill_families) if need_weights else per_slot
        total = np.zeros(n)
        mparams = np.zeros(n) if need_weights else None
        for flat, values, mp in zip(self._flat(index), per_slot, weights):
            total += values[flat]
            if need_weights:
                mparams += mp[flat]
        if calibration is not None:
            total += calibration.offset_ms
            if need_weights:
                total += calibration.per_mparam_ms * np.maximum(mparams - calibration.cache_mparams, 0.0)
        return total

    def expected(self, probs: Mapping[str, Any], families: Iterable[str] | None = None):  # noqa: ANN201
        """Expected summed latency (ms), layer count and million weights (of the layers of `families`;
        None: all) as torch scalars, differentiable."""
        import torch

        unknown = sorted(set(probs) - set(self.dim_names))
        if unknown:
            raise PredictError(f"probabilities given for unknown choice(s) {unknown} of space {self.space.name!r}")
        dims = self.space.dims
        vectors: dict[str, Any] = {}
        ref = next((p for p in probs.values() if isinstance(p, torch.Tensor)), None)
        dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
        device = ref.device if ref is not None else None
        for d, opts in dims.items():
            if d in probs:
                p = torch.as_tensor(probs[d], dtype=dtype, device=device)
                if p.shape != (len(opts),):
                    raise PredictError(f"probabilities of {d!r} must have shape ({len(opts)},) "
                                       f"for options {list(opts)}, got {tuple(p.shape)}")
                vectors[d] = p
            elif len(opts) == 1:
                vectors[d] = torch.ones(1, dtype=dtype, device=device)
        totals = [torch.zeros((), dtype=dtype, device=device) for _ in range(3)]
        weights = [w.reshape(a.shape) for w, a in zip(self.weights(families), self.latency)]
        for slot, *arrays in zip(self.slots, self.latency, self.present, weights):
            missing = [d for d in slot.dims if d not in vectors]
            if missing:
                raise PredictError(f"no probabilities given for choice(s) {missing} (space {self.space.name!r})")
            for k, array in enumerate(arrays):
                t = torch.as_tensor(array, dtype=dtype, device=device)
                for d in slot.dims:  # contract the leading axis each time
                    t = torch.tensordot(vectors[d], t, dims=1)
                totals[k] = totals[k] + t.reshape(())
        return tuple(totals)


def check_slots_exact(predictor: CompiledPredictor, space: "SearchSpace", lookup_ms: Any,
                      rng: np.random.Generator, n: int = 16) -> None:
    """Confirm on `n` random archs that the slot decomposition reproduces the per-key sum."""
    archs = [space.sample(rng) for _ in range(n)]
    fast, layers, _ = predictor.sum_and_layers(predictor.codec.encode_many(archs))
    for arch, f, nl in zip(archs, fast, layers):
        keys = space.block_keys(arch)
        slow = sum(lookup_ms(k) for k in keys)
        if not np.isclose(f, slow, rtol=1e-9, atol=1e-9) or nl != len(keys):
            raise PredictError(f"space {space.name!r}: its layout is not supported by the vectorized "
                               f"predictor (arch {arch.short()} sums to {slow} ms, slots give {f})")


__all__: Sequence[str] = ["CompiledPredictor", "PredictError", "Slot", "layer_family", "space_slots"]
