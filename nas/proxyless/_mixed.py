"""Mixed layers: every candidate block of one layer position, run one, two or all paths at a time.

A *unit* is a group of a space's choices that is sampled and gated together. For the MnasNet space
the stage-shared choices (op, kernel, se, skip) of a stage form one unit, so every layer of the stage
runs the same candidate (the space's factorization); for once-for-all the per-layer kernel and expand
of one layer form a unit. A stage's depth is its own unit: it only decides whether layers beyond the
shallowest depth run or pass their input through (identity), which costs nothing.

The candidates are built from the space's own `decode`, so a candidate is exactly the block the
derived arch will have. Blocks that differ only in the identity residual (skip) share one module; the
residual is added here. By default each candidate is its own `nas._model.Block`; with
``share_weights`` the candidates of one op family share their convolutions (`nas.proxyless._shared`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import torch
from torch import nn

from nas._arch import BlockSpec
from nas._model import Block
from nas.proxyless._shared import SharedCandidate, SharedOp, family

Combo = tuple[int, ...]
"""Option indices of a unit's dims, in the unit's dim order."""


@dataclass(frozen=True)
class Unit:
    """Choices sampled jointly and gated by one pair of binary gates (see the module docstring)."""

    name: str
    dims: tuple[str, ...]
    sizes: tuple[int, ...]

    @property
    def combos(self) -> list[Combo]:
        """Every joint option, in row-major order of `dims` (the order of `joint_probs`)."""
        return list(itertools.product(*(range(n) for n in self.sizes)))

    def combo_of(self, path: Mapping[str, int]) -> Combo:
        return tuple(path[d] for d in self.dims)

    def joint_probs(self, probs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Probability of every combo (product of the dims' independent probabilities), flat."""
        joint = probs[self.dims[0]]
        for d in self.dims[1:]:
            joint = (joint[:, None] * probs[d][None, :]).reshape(-1)
        return joint


class MixedLayer(nn.Module):
    """One layer position (stage, layer) holding a `Block` per distinct candidate.

    `specs` maps every combo of the op unit (the empty combo when the layer has none) to the
    `BlockSpec` the space gives that layer for it. `optional` says whether a depth choice can drop
    the layer (it then passes its input through). With `share_weights`, ``candidates`` are
    `SharedCandidate` modules (private batch norms) and ``shared`` holds one `SharedOp` per op family.
    """

    def __init__(self, name: str, specs: Mapping[Combo, BlockSpec], in_channels: int,
                 share_weights: bool = False) -> None:
        super().__init__()
        self.name = name
        self.in_channels = in_channels
        modules: dict[BlockSpec, int] = {}
        self._route: dict[Combo, tuple[int, bool]] = {}
        for combo, spec in specs.items():
            body = replace(spec, skip=False)
            if body not in modules:
                modules[body] = len(modules)
            self._route[combo] = (modules[body], spec.skip)
        self.specs = dict(specs)
        self.share_weights = share_weights
        if share_weights:
            families = list(dict.fromkeys(family(body) for body in modules))
            self._family = [families.index(family(body)) for body in modules]
            self.shared = nn.ModuleList(SharedOp([b for b in modules if family(b) == f], in_channels)
                                        for f in families)
            self.candidates = nn.ModuleList(SharedCandidate(body, in_channels) for body in modules)
        else:
            self.candidates = nn.ModuleList(Block(body, in_channels) for body in modules)

    def _call(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if self.share_weights:
            return self.candidates[index](x, self.shared[self._family[index]])
        return self.candidates[index](x)

    def route(self, combo: Combo) -> tuple[int, bool]:
        """(candidate module index, residual) of one combo."""
        return self._route[combo]

    def run(self, x: torch.Tensor, combo: Combo) -> torch.Tensor:
        """The single path of one combo: only its candidate is computed."""
        index, skip = self._route[combo]
        y = self._call(index, x)
        return x + y if skip else y

    def run_two(self, x: torch.Tensor, combos: Sequence[Combo], gates: torch.Tensor) -> torch.Tensor:
        """gates[0]·path(combos[0]) + gates[1]·path(combos[1]); a shared candidate runs once."""
        outputs: dict[int, torch.Tensor] = {}
        total = None
        for combo, gate in zip(combos, gates):
            index, skip = self._route[combo]
            if index not in outputs:
                outputs[index] = self._call(index, x)
            y = x + outputs[index] if skip else outputs[index]
            total = gate * y if total is None else total + gate * y
        assert total is not None
        return total

    def run_all(self, x: torch.Tensor, weights: torch.Tensor, combos: Sequence[Combo]) -> torch.Tensor:
        """DARTS-style: every candidate computed, mixed by the combos' probabilities `weights`."""
        per_module: list[torch.Tensor | None] = [None] * len(self.candidates)
        skip_weight = None
        for w, combo in zip(weights, combos):
            index, skip = self._route[combo]
            per_module[index] = w if per_module[index] is None else per_module[index] + w
            if skip:
                skip_weight = w if skip_weight is None else skip_weight + w
        total = None if skip_weight is None else skip_weight * x
        for index, w in enumerate(per_module):
            if w is not None:
                y = self._call(index, x)
                total = w * y if total is None else total + w * y
        assert total is not None
        return total
