"""The over-parameterized network of a search space, with one α vector per searched choice.

Architecture parameters map one to one onto the space's named choices (`space.dims`): α[d] holds
one logit per option of choice d, and softmax(α[d]) is exactly the probability vector that
`LatencyTable.expected` takes for d. A sampled *path* is one option index per searched choice,
i.e. a point of the space; `arch_of(path)` is that arch and `derive()` the most probable one.

Choices the network cannot mix are pinned to one option: the input resolution (default: the
largest) and stage widths (default: the middle option, the lower one of two middles: MobileNetV2 widths in
the built-in MnasNet space; ProxylessNAS keeps widths fixed too). A stage's identity residual (skip)
is pinned on by default (`pin_skip`): ProxylessNAS's candidate ops always keep it, and paths without
it do not train under path sampling (see the benchmarks README). Any other choice may be pinned as
well (`pins`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from nas._arch import Arch, option_index
from nas._errors import HwnasError
from nas._model import Head, build_block
from nas._codec import Codec
from nas._space import SearchSpace
from nas.proxyless._mixed import Combo, MixedLayer, Unit

OP_ATTRS = ("op", "kernel", "expand", "se", "skip")
"""Choices that select a layer's candidate block."""
SEARCHABLE = OP_ATTRS + ("depth",)

Path = dict[str, int]
"""Option index of every searched choice (keys: `ProxylessNetwork.arch_dims`)."""


class ProxylessError(HwnasError):
    """A bad ProxylessNAS input: an unknown or illegal pin, a space layout it cannot mix, a config value."""


def _attr(dim: str) -> str:
    return dim.rsplit(".", 1)[-1]


def resolve_pins(space: SearchSpace, pins: Mapping[str, Any] | None = None, pin_skip: bool = True) -> dict[str, Any]:
    """The value of every multi-option choice that is not searched (user pins + defaults)."""
    dims = space.dims
    out: dict[str, Any] = {}
    for dim, value in (pins or {}).items():
        if dim not in dims:
            raise ProxylessError(f"pin {dim!r} is not a choice of space {space.name!r}; choices: {list(dims)}")
        index = option_index(dims[dim], value)
        if index is None:
            raise ProxylessError(f"pin {dim}={value!r} is not one of {list(dims[dim])}")
        out[dim] = dims[dim][index]
    for dim, opts in dims.items():
        if len(opts) > 1 and dim not in out:
            if pin_skip and _attr(dim) == "skip" and True in opts:
                out[dim] = True
            elif _attr(dim) not in SEARCHABLE:
                out[dim] = opts[-1] if dim == "resolution" else opts[(len(opts) - 1) // 2]
    return out


@dataclass(frozen=True)
class _Position:
    stage: int
    layer: int
    op_unit: Unit | None
    depth_unit: Unit | None
    fixed_depth: int  # used when depth_unit is None


class ProxylessNetwork(nn.Module):
    """Stem, one `MixedLayer` per layer position up to each stage's largest depth, head.

    Forward modes: `forward(x, path)` runs one path (binarized: other candidates are not touched);
    `forward_two(x, paths, gates)` runs two paths per unit mixed by binary gates (ProxylessNAS's
    two-path gradient estimate); `forward_all(x)` runs every candidate weighted by its probability
    (DARTS-style; for comparison only). `share_weights`: the candidates of a layer that run the same
    op share its convolutions (`nas.proxyless._shared`).
    """

    def __init__(self, space: SearchSpace, pins: Mapping[str, Any] | None = None, dropout: float = 0.0,
                 share_weights: bool = False, pin_skip: bool = True) -> None:
        super().__init__()
        self.space = space
        self.share_weights = share_weights
        dims = space.dims
        self.pins = resolve_pins(space, pins, pin_skip)
        self.arch_dims: list[str] = [d for d, o in dims.items() if len(o) > 1 and d not in self.pins]
        if not self.arch_dims:
            raise ProxylessError(f"nothing to search: every choice of space {space.name!r} is pinned or has one option")
        self._alpha = nn.ParameterList(nn.Parameter(torch.zeros(len(dims[d]))) for d in self.arch_dims)
        self._alpha_index = {d: k for k, d in enumerate(self.arch_dims)}
        searched = set(self.arch_dims)

        base: dict[str, Any] = {d: self.pins.get(d, o[0]) for d, o in dims.items()}
        units: list[Unit] = []
        positions: list[_Position] = []
        layers: list[MixedLayer] = []
        channels = space.stem.out_channels
        for i, st in enumerate(space.stages):
            depth_dim = f"s{i}.depth"
            depth_unit = self._unit(depth_dim, [depth_dim], searched)
            if depth_dim in dims:
                max_depth = max(dims[depth_dim]) if depth_unit else base[depth_dim]
                base[depth_dim] = max_depth
            else:
                max_depth = st.max_depth
            shared = [f"s{i}.{a}" for a in OP_ATTRS if f"s{i}.{a}" in searched]
            per_layer = [[f"s{i}.l{j}.{a}" for a in OP_ATTRS if f"s{i}.l{j}.{a}" in searched]
                         for j in range(max_depth)]
            if shared and any(per_layer):
                raise ProxylessError(f"stage {i} of space {space.name!r} searches both stage-shared {shared} and "
                                     "per-layer choices; pin one kind (pins) to search it with ProxylessNAS")
            unit_of_layer = ([self._unit(f"s{i}.ops", shared, searched)] * max_depth if shared else
                             [self._unit(f"s{i}.l{j}.ops", per_layer[j], searched) for j in range(max_depth)])
            specs: list[dict[Combo, Any]] = [{} for _ in range(max_depth)]
            for unit in dict.fromkeys(unit_of_layer):
                for combo in unit.combos if unit else [()]:
                    choices = dict(base)
                    if unit:
                        choices.update({d: dims[d][k] for d, k in zip(unit.dims, combo)})
                    stage = space.decode(choices).stages[i]
                    for j, spec in enumerate(stage):
                        if unit_of_layer[j] is unit:
                            specs[j][combo] = spec
            in_ch = channels
            for j in range(max_depth):
                layers.append(MixedLayer(f"s{i}.l{j}", specs[j], in_ch, share_weights))
                positions.append(_Position(i, j, unit_of_layer[j], depth_unit, max_depth))
                in_ch = next(iter(specs[j].values())).out_channels
            channels = in_ch
            units += [u for u in dict.fromkeys(unit_of_layer) if u is not None]
            if depth_unit:
                units.append(depth_unit)
        self.units: list[Unit] = units
        self._positions = positions
        self.layers = nn.ModuleList(layers)
        keys = space.decode(base).block_keys(space.num_classes, space.in_channels)
        self.stem = build_block(keys[0])
        self.head = Head(space.head, channels, space.num_classes, dropout)
        self.resolution = int(base["resolution"])
        self._base = {d: o[0] for d, o in dims.items()} | self.pins

    def _unit(self, name: str, dims: Sequence[str], searched: set[str]) -> Unit | None:
        dims = [d for d in dims if d in searched]
        sizes = self.space.dims
        return Unit(name, tuple(dims), tuple(len(sizes[d]) for d in dims)) if dims else None

    # ------------------------------------------------------------------ parameters
    def arch_parameters(self) -> list[nn.Parameter]:
        """The α vectors, in `arch_dims` order."""
        return list(self._alpha)

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every other parameter (candidate blocks, stem, head)."""
        arch = {id(p) for p in self._alpha}
        return [p for p in self.parameters() if id(p) not in arch]

    def alpha(self, dim: str) -> nn.Parameter:
        return self._alpha[self._alpha_index[dim]]

    def probs(self) -> dict[str, torch.Tensor]:
        """softmax(α) of every searched choice (differentiable)."""
        return {d: torch.softmax(a, 0) for d, a in zip(self.arch_dims, self._alpha)}

    def latency_probs(self) -> dict[str, torch.Tensor]:
        """`probs()` plus a one-hot vector for every pinned choice: the input of `LatencyTable.expected`."""
        out = self.probs()
        ref = self._alpha[0] if len(self._alpha) else torch.zeros(1)
        for d, value in self.pins.items():  # pins hold options of the space (`resolve_pins`)
            out[d] = torch.zeros(len(self.space.dims[d]), dtype=ref.dtype)
            out[d][option_index(self.space.dims[d], value)] = 1.0
        return out

    # ------------------------------------------------------------------ paths and archs
    def row_of(self, path: Mapping[str, int]) -> np.ndarray:
        """The codec row (`nas.Codec` of the space) a path names, pins and single-option choices filled in."""
        missing = [d for d in self.arch_dims if d not in path]
        if missing:
            raise ProxylessError(f"path lacks searched choice(s) {missing}")
        codec = Codec.of(self.space)
        row = codec.row_from_choices(self._base)
        for d in self.arch_dims:
            row[codec.names.index(d)] = path[d]
        return row

    def arch_of(self, path: Mapping[str, int]) -> Arch:
        """The arch a path names (pins and single-option choices filled in)."""
        return Codec.of(self.space).decode(self.row_of(path))

    def path_of(self, arch: Arch) -> Path:
        """The path of an arch of the space; `ProxylessError` if the arch differs in a pinned choice."""
        codec = Codec.of(self.space)
        row = codec.encode(arch)
        path = {d: int(row[codec.names.index(d)]) for d in self.arch_dims}
        if self.arch_of(path) != arch:
            raise ProxylessError(f"arch {arch.short()} differs from the network's pinned choices {self.pins}")
        return path

    def argmax_path(self) -> Path:
        return {d: int(torch.argmax(a.detach())) for d, a in zip(self.arch_dims, self._alpha)}

    def derive(self) -> Arch:
        """The most probable arch (argmax of every α), validated against the space."""
        arch = self.arch_of(self.argmax_path())
        self.space.validate(arch)
        return arch

    @torch.no_grad()
    def sample_path(self, generator: torch.Generator) -> Path:
        """One path: every unit's combo drawn from its joint probabilities."""
        probs = {d: p.double() for d, p in self.probs().items()}
        path: Path = {}
        for unit in self.units:
            k = int(torch.multinomial(unit.joint_probs(probs), 1, generator=generator))
            path.update(zip(unit.dims, unit.combos[k]))
        return path

    @torch.no_grad()
    def sample_two(self, generator: torch.Generator) -> tuple[Path, Path, dict[str, int]]:
        """Two paths whose combos differ in every unit, and which of the two is active per unit.

        Per unit (as in the paper): two distinct combos drawn from the multinomial without
        replacement, the active one drawn from their renormalized probabilities.
        """
        probs = {d: p.double() for d, p in self.probs().items()}
        a: Path = {}
        b: Path = {}
        active: dict[str, int] = {}
        for unit in self.units:
            joint = unit.joint_probs(probs)
            first, second = (int(k) for k in torch.multinomial(joint, 2, replacement=False, generator=generator))
            a.update(zip(unit.dims, unit.combos[first]))
            b.update(zip(unit.dims, unit.combos[second]))
            pair = torch.stack([joint[first], joint[second]])
            active[unit.name] = int(torch.multinomial(pair / pair.sum(), 1, generator=generator))
        return a, b, active

    # ------------------------------------------------------------------ forward modes
    def _present(self, pos: _Position, path: Mapping[str, int]) -> bool:
        if pos.depth_unit is None:
            return pos.layer < pos.fixed_depth
        d = pos.depth_unit.dims[0]
        return pos.layer < int(self.space.dims[d][path[d]])

    def forward(self, x: torch.Tensor, path: Mapping[str, int]) -> torch.Tensor:
        """One path: only the sampled candidate of each present layer runs."""
        x = self.stem(x)
        for pos, layer in zip(self._positions, self.layers):
            if self._present(pos, path):
                x = layer.run(x, pos.op_unit.combo_of(path) if pos.op_unit else ())
        return self.head(x)

    def forward_two(self, x: torch.Tensor, paths: tuple[Mapping[str, int], Mapping[str, int]],
                    gates: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Two paths per unit mixed by `gates[unit.name]` (shape (2,), binary in search)."""
        x = self.stem(x)
        for pos, layer in zip(self._positions, self.layers):
            present = [self._present(pos, p) for p in paths]
            if not any(present):
                continue
            if pos.op_unit is None:
                mixed = layer.run(x, ())
            else:
                combos = [pos.op_unit.combo_of(p) for p in paths]
                mixed = layer.run_two(x, combos, gates[pos.op_unit.name])
            if present[0] == present[1]:
                x = mixed
            else:
                g = gates[pos.depth_unit.name]  # type: ignore[union-attr]
                x = g[0] * (mixed if present[0] else x) + g[1] * (mixed if present[1] else x)
        return self.head(x)

    def forward_all(self, x: torch.Tensor) -> torch.Tensor:
        """DARTS-style: every candidate of every layer runs, mixed by its probability."""
        probs = self.probs()
        x = self.stem(x)
        for pos, layer in zip(self._positions, self.layers):
            if pos.op_unit is None:
                mixed = layer.run(x, ())
            else:
                mixed = layer.run_all(x, pos.op_unit.joint_probs(probs), pos.op_unit.combos)
            if pos.depth_unit is None:
                if pos.layer < pos.fixed_depth:
                    x = mixed
                continue
            d = pos.depth_unit.dims[0]
            keep = torch.tensor([float(pos.layer < int(o)) for o in self.space.dims[d]])
            if bool(keep.all()):
                x = mixed
                continue
            p_present = (probs[d] * keep).sum()
            x = p_present * mixed + (1 - p_present) * x
        return self.head(x)

    def candidate_modules(self) -> Iterable[tuple[str, nn.Module]]:
        """(layer name, candidate block) of every candidate, for hooks and counting."""
        for layer in self.layers:
            for k, module in enumerate(layer.candidates):
                yield f"{layer.name}.c{k}", module
