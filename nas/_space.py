"""Search spaces declared as data (YAML in ``search_spaces/``): sample, mutate, encode, count.

A space is a list of stages. Each stage attribute (op, kernel, expand, se, skip, width, depth) is
either fixed or a choice; a choice is shared by every layer of the stage (MnasNet's factorization)
or made per layer (once-for-all's elastic kernel and expand). Archs are points of the space;
`encode`/`decode` map them to a flat dict of named choices that Optuna or a controller can drive.
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from nas._arch import Arch, ArchError, BlockKey, BlockSpec, HeadSpec, conv_out_size, make_divisible, option_index
from nas._space_yaml import (ATTRS, TOP_KEYS, Choice, SpaceError, StageDef, family_choices, list_spaces,
                             parse_families, parse_op, parse_stage, positive_int, preset_choices, read_declaration)

class SearchSpace:
    """A search space loaded from a YAML declaration; see ``search_spaces/*.yaml``."""

    def __init__(self, config: Mapping[str, Any], source: str = "<dict>") -> None:
        self.source = source
        self._config = copy.deepcopy(dict(config))
        cfg = self._config
        unknown = sorted(set(cfg) - TOP_KEYS)
        if unknown:
            raise SpaceError(f"{source}: unknown key(s) {unknown}; allowed: {sorted(TOP_KEYS)}")
        for key in ("name", "stem", "head", "stages"):
            if key not in cfg:
                raise SpaceError(f"{source}: missing key {key!r}")
        self.name: str = str(cfg["name"])
        self.description: str = str(cfg.get("description", ""))
        self.num_classes: int = positive_int(cfg.get("num_classes", 1000), "num_classes", source)
        self.in_channels: int = positive_int(cfg.get("in_channels", 3), "in_channels", source)
        self.width_mult: float = float(cfg.get("width_mult", 1.0))
        if self.width_mult <= 0:
            raise SpaceError(f"{source}: width_mult must be positive, got {self.width_mult}")
        resolutions = cfg.get("resolutions", [224])
        if not isinstance(resolutions, list) or not resolutions:
            raise SpaceError(f"{source}: resolutions must be a non-empty list, got {resolutions!r}")
        self.resolutions: tuple[int, ...] = tuple(
            sorted({positive_int(r, "resolutions", source) for r in resolutions}))
        try:
            stem = dict(cfg["stem"])
            stem["out_channels"] = self._scale(stem["out_channels"])
            self.stem = BlockSpec(op="conv", **stem)
            head = dict(cfg["head"])
            head["channels"] = self._scale(head["channels"])
            if head.get("feature_channels"):
                head["feature_channels"] = self._scale(head["feature_channels"])
            self.head = HeadSpec(**head)
        except (TypeError, ArchError, KeyError) as err:
            raise SpaceError(f"{source}: bad stem/head: {err}") from None
        defaults = cfg.get("defaults", {}) or {}
        self.stages: tuple[StageDef, ...] = tuple(
            parse_stage(stage, defaults, f"{source}: stage {i}") for i, stage in enumerate(cfg["stages"]))
        self._dims = self._build_dims()
        self._presets = cfg.get("presets", {}) or {}
        self._families = parse_families(self.stages, cfg.get("preset_families", {}) or {}, source)

    # ------------------------------------------------------------------ construction
    def _scale(self, width: int) -> int:
        return int(width) if self.width_mult == 1.0 else make_divisible(width * self.width_mult, 8)

    def _build_dims(self) -> dict[str, tuple[Choice, ...]]:
        dims: dict[str, tuple[Choice, ...]] = {"resolution": self.resolutions}
        for i, st in enumerate(self.stages):
            for attr in ATTRS:
                if attr not in st.choices:
                    continue
                if attr in st.per_layer:
                    for j in range(st.max_depth):
                        dims[f"s{i}.l{j}.{attr}"] = st.choices[attr]
                else:
                    dims[f"s{i}.{attr}"] = st.choices[attr]
        return dims

    # ------------------------------------------------------------------ public API
    @property
    def dims(self) -> dict[str, tuple[Choice, ...]]:
        """Every named choice and its options, in a fixed order (what `encode` returns)."""
        return dict(self._dims)

    def to_dict(self) -> dict[str, Any]:
        """The declaration this space was built from (with overrides applied)."""
        return copy.deepcopy(self._config)

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r}, stages={len(self.stages)}, resolutions={list(self.resolutions)})"

    def decode(self, choices: Mapping[str, Choice]) -> Arch:
        """Build the arch named by a full dict of choices (as `encode` returns)."""
        unknown = sorted(set(choices) - set(self._dims))
        missing = [k for k in self._dims if k not in choices]
        if unknown or missing:
            raise ArchError(f"space {self.name!r}: unknown choice(s) {unknown}, missing choice(s) {missing}")
        for key, opts in self._dims.items():
            if option_index(opts, choices[key]) is None:
                raise ArchError(f"space {self.name!r}: {key}={choices[key]!r} is not one of {list(opts)}")
        stages = []
        channels = self.stem.out_channels
        for i, st in enumerate(self.stages):
            def get(attr: str, layer: int, i: int = i, st: StageDef = st) -> Choice:
                if attr in st.per_layer:
                    return choices[f"s{i}.l{layer}.{attr}"]
                return choices[f"s{i}.{attr}"] if attr in st.choices else st.fixed[attr]

            blocks = []
            for j in range(int(get("depth", 0))):
                blocks.append(self._make_block(st, get, j, channels))
                channels = blocks[-1].out_channels
            stages.append(tuple(blocks))
        return Arch(int(choices["resolution"]), self.stem, tuple(stages), self.head)

    def _make_block(self, st: StageDef, get: Any, j: int, in_channels: int) -> BlockSpec:
        op, expand = parse_op(get("op", j))
        if expand is None:
            expand = int(get("expand", j))
        out = self._scale(int(get("width", j)))
        stride = st.stride if j == 0 else 1
        skip = bool(get("skip", j)) and stride == 1 and in_channels == out
        return BlockSpec(op, int(get("kernel", j)), stride, out, expand, float(get("se", j)), skip, st.act)

    def encode(self, arch: Arch) -> dict[str, Choice]:
        """The flat choices naming `arch`; raises `ArchError` naming the choice out of range."""
        if not isinstance(arch, Arch):
            raise ArchError(f"expected an Arch, got {type(arch).__name__}")
        out: dict[str, Choice] = {}
        if arch.resolution not in self.resolutions:
            raise ArchError(f"space {self.name!r}: resolution {arch.resolution} is not one of {list(self.resolutions)}")
        out["resolution"] = arch.resolution
        if arch.stem != self.stem:
            raise ArchError(f"space {self.name!r}: stem {arch.stem.short()} differs from the space's {self.stem.short()}")
        if arch.head != self.head:
            raise ArchError(f"space {self.name!r}: head {arch.head} differs from the space's {self.head}")
        if len(arch.stages) != len(self.stages):
            raise ArchError(f"space {self.name!r}: arch has {len(arch.stages)} stages, the space {len(self.stages)}")
        channels = self.stem.out_channels
        for i, (st, blocks) in enumerate(zip(self.stages, arch.stages)):
            for attr, opts in st.choices.items():
                if attr in st.per_layer:
                    for j in range(st.max_depth):
                        value = self._read(st, attr, blocks[j], channels) if j < len(blocks) else opts[0]
                        out[f"s{i}.l{j}.{attr}"] = self._check(value, opts, f"stage {i} layer {j}: {attr}")
                elif attr == "depth":
                    out[f"s{i}.depth"] = self._check(len(blocks), opts, f"stage {i}: depth")
                else:
                    value = self._read(st, attr, blocks[0], channels, blocks)
                    out[f"s{i}.{attr}"] = self._check(value, opts, f"stage {i}: {attr}")
            channels = blocks[-1].out_channels
        decoded = self.decode(out)
        if decoded != arch:
            raise ArchError(f"space {self.name!r}: {_first_difference(arch, decoded)}")
        return out

    def _read(self, st: StageDef, attr: str, block: BlockSpec, in_channels: int,
              blocks: tuple[BlockSpec, ...] = ()) -> Choice:
        if attr == "op":
            if block.op != "mb" or "mb" in st.options("op"):
                return block.op
            return f"mb{block.expand}"
        if attr == "width":
            matches = [w for w in st.options("width") if self._scale(int(w)) == block.out_channels]
            return matches[0] if matches else block.out_channels
        if attr == "skip":
            eligible = [b.skip for k, b in enumerate(blocks)
                        if b.stride == 1 and b.out_channels == (in_channels if k == 0 else blocks[k - 1].out_channels)]
            return eligible[0] if eligible else st.options("skip")[0]
        return getattr(block, attr)

    @staticmethod
    def _check(value: Choice, opts: tuple[Choice, ...], what: str) -> Choice:
        index = option_index(opts, value)
        if index is None:
            raise ArchError(f"{what} {value!r} is not one of {list(opts)}")
        return opts[index]

    def validate(self, arch: Arch) -> None:
        """Raise `ArchError` saying which choice of `arch` is outside the space."""
        self.encode(arch)

    def contains(self, arch: Arch) -> bool:
        """Whether `arch` is a point of this space (see `validate` for the reason when not)."""
        try:
            self.encode(arch)
        except ArchError:
            return False
        return True

    def sample(self, rng: np.random.Generator) -> Arch:
        """A random arch: every choice uniform and independent."""
        return self.decode({k: opts[rng.integers(len(opts))] for k, opts in self._dims.items()})

    def mutate(self, arch: Arch, rng: np.random.Generator, prob: float = 0.1) -> Arch:
        """Resample each choice of `arch` with probability `prob`."""
        choices = self.encode(arch)
        for key, opts in self._dims.items():
            if rng.random() < prob:
                choices[key] = opts[rng.integers(len(opts))]
        return self.decode(choices)

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
        """Each choice taken from `a` or `b` with equal probability."""
        ca, cb = self.encode(a), self.encode(b)
        return self.decode({k: ca[k] if rng.random() < 0.5 else cb[k] for k in self._dims})

    def restrict(self, **allowed: Iterable[Choice]) -> "SearchSpace":
        """A narrower space keeping only the listed options, e.g. ``restrict(kernel=[7], depth=[4])``.

        Attributes: op, kernel, expand, se, skip, width, depth, resolution. An attribute fixed in a
        stage is left alone; a choice that would be left with no option is an error.
        """
        cfg = self.to_dict()
        for attr, values in allowed.items():
            if attr not in ATTRS and attr != "resolution":
                raise SpaceError(f"restrict: unknown attribute {attr!r}; use one of {list(ATTRS) + ['resolution']}")
            values = list(values)
            if attr == "resolution":
                kept = [r for r in self.resolutions if r in values]
                if not kept:
                    raise SpaceError(f"restrict: resolution {values} leaves none of {list(self.resolutions)}")
                cfg["resolutions"] = kept
                continue
            touched = False
            defaults_choices = (cfg.get("defaults") or {}).get("choices") or {}
            for i, (st, raw) in enumerate(zip(self.stages, cfg["stages"])):
                if attr not in st.choices:
                    continue
                touched = True
                kept = [o for o in st.choices[attr] if option_index(values, o) is not None]
                if not kept:
                    raise SpaceError(f"restrict: {attr}={values} leaves stage {i} no option (it has {list(st.choices[attr])})")
                raw.setdefault("choices", {})
                raw["choices"] = dict(raw["choices"] or {})
                raw["choices"][attr] = kept
            if not touched and attr not in defaults_choices:
                raise SpaceError(f"restrict: {attr!r} is not a choice of any stage of {self.name!r}")
        return SearchSpace(cfg, f"{self.source} (restricted)")

    def size(self) -> int:
        """The exact number of distinct archs in the space.

        Counts each arch once: a skip choice that no layer of a stage can use does not double it.
        """
        counts: dict[int, int] = {self.stem.out_channels: 1}
        for st in self.stages:
            per_layer = [len(st.choices[a]) for a in st.per_layer]
            shared = [a for a in st.choices if a not in st.per_layer]
            new: dict[int, int] = {}
            for channels, count in counts.items():
                seen: set[tuple[BlockSpec, ...]] = set()
                for combo in itertools.product(*(st.choices[a] for a in shared)):
                    picked = dict(zip(shared, combo))

                    def get(attr: str, layer: int, picked: dict = picked, st: StageDef = st) -> Choice:
                        if attr in picked:
                            return picked[attr]
                        return st.choices[attr][0] if attr in st.per_layer else st.fixed[attr]

                    blocks: list[BlockSpec] = []
                    prev = channels
                    for j in range(int(get("depth", 0))):
                        blocks.append(self._make_block(st, get, j, prev))
                        prev = blocks[-1].out_channels
                    signature = tuple(blocks)
                    if signature in seen:
                        continue
                    seen.add(signature)
                    n = count * int(np.prod([p ** len(blocks) for p in per_layer], dtype=object))
                    new[prev] = new.get(prev, 0) + n
            counts = new
        return sum(counts.values()) * len(self.resolutions)

    def block_keys(self, arch: Arch) -> list[BlockKey]:
        """Latency-table keys of every layer of `arch` (stem, blocks, head)."""
        return arch.block_keys(self.num_classes, self.in_channels)

    def all_block_keys(self, resolutions: Iterable[int] | None = None) -> list[BlockKey]:
        """Every key any arch of the space can produce at the given resolutions (default: all)."""
        keys: set[BlockKey] = set()
        for resolution in resolutions or self.resolutions:
            keys.add(BlockKey("stem", "conv", resolution, self.in_channels, self.stem.out_channels,
                              self.stem.kernel, self.stem.stride, act=self.stem.act))
            states = {(self.stem.out_channels, conv_out_size(resolution, self.stem.kernel, self.stem.stride))}
            for st in self.stages:
                shared = [a for a in st.choices if a not in st.per_layer and a != "depth"]
                layer_attrs = sorted(st.per_layer)
                new_states = set()
                for channels, hw in states:
                    for combo in itertools.product(*(st.choices[a] for a in shared)):
                        picked = dict(zip(shared, combo))
                        for layer_combo in itertools.product(*(st.choices[a] for a in layer_attrs)):
                            picked.update(zip(layer_attrs, layer_combo))

                            def get(attr: str, layer: int, picked: dict = picked, st: StageDef = st) -> Choice:
                                return picked[attr] if attr in picked else st.fixed[attr]

                            first = self._make_block(st, get, 0, channels)
                            keys.add(BlockKey.of(first, channels, hw))
                            out_hw = conv_out_size(hw, first.kernel, first.stride)
                            if st.max_depth > 1:
                                keys.add(BlockKey.of(self._make_block(st, get, 1, first.out_channels),
                                                     first.out_channels, out_hw))
                            new_states.add((first.out_channels, out_hw))
                states = new_states
            for channels, hw in states:
                keys.add(BlockKey("head", "head", hw, channels, self.head.channels, act=self.head.act,
                                  feature_channels=self.head.feature_channels, num_classes=self.num_classes))
        return sorted(keys, key=lambda k: (k.in_hw * -1, k.kind != "stem", k.kind == "head", k.short()))

    # ------------------------------------------------------------------ presets
    @property
    def preset_names(self) -> list[str]:
        return list(self._presets)

    def preset(self, name: str, resolution: int | None = None) -> Arch:
        """A named arch of this space (e.g. ``mnasnet_b1``), at its declared or the given resolution."""
        if name not in self._presets:
            raise SpaceError(f"space {self.name!r} has no preset {name!r}; presets: {self.preset_names}")
        where = f"{self.source}: preset {name!r}"
        return self._decode_preset(preset_choices(self.stages, self.resolutions, self._presets[name], where, resolution),
                                   where)

    @property
    def preset_family_names(self) -> list[str]:
        return list(self._families)

    def preset_family(self, name: str, resolution: int | None = None) -> list[Arch]:
        """Every member of a preset family: each `scale` choice takes one value network-wide (all
        combinations), each `fixed` choice its given value, other choices their first option."""
        if name not in self._families:
            raise SpaceError(f"space {self.name!r} has no preset family {name!r}; "
                             f"families: {self.preset_family_names}")
        where = f"{self.source}: preset family {name!r}"
        return [self._decode_preset(c, where)
                for c in family_choices(self.stages, self.resolutions, self._families[name], where, resolution)]

    def _decode_preset(self, choices: Mapping[str, Any], where: str) -> Arch:
        try:
            return self.decode(choices)
        except ArchError as err:
            raise SpaceError(f"{where}: {err}") from None

    def preset_family_description(self, name: str) -> str:
        return str(self._families.get(name, {}).get("description", ""))

    def preset_description(self, name: str) -> str:
        return str(self._presets.get(name, {}).get("description", ""))


def _first_difference(arch: Arch, other: Arch) -> str:
    if arch.depths != other.depths:
        return f"stage depths {arch.depths} cannot be formed (nearest {other.depths})"
    for s, (sa, sb) in enumerate(zip(arch.stages, other.stages)):
        for j, (ba, bb) in enumerate(zip(sa, sb)):
            if ba != bb:
                diffs = [f"{f}={getattr(ba, f)!r} (space gives {getattr(bb, f)!r})"
                         for f in ba.__dataclass_fields__ if getattr(ba, f) != getattr(bb, f)]
                return f"stage {s} layer {j}: " + ", ".join(diffs)
    return "arch differs from every point of the space"


def load_space(name_or_path: str | Path, **overrides: Any) -> SearchSpace:
    """Load a built-in space by name (``mnasnet``, ``ofa_mbv3``) or a YAML file by path.

    Overrides: num_classes, in_channels, resolutions (list of ints), width_mult, stem_stride.
    """
    return SearchSpace(*read_declaration(name_or_path, **overrides))


def list_presets() -> dict[str, str]:
    """Every built-in preset name -> the space it belongs to."""
    return {p: s for s in list_spaces() for p in load_space(s).preset_names}


def load_preset(name: str, **overrides: Any) -> tuple[SearchSpace, Arch]:
    """Find a built-in preset by name; returns its space (with overrides) and the arch."""
    presets = list_presets()
    if name not in presets:
        raise SpaceError(f"unknown preset {name!r}; presets: {', '.join(sorted(presets))}")
    space = load_space(presets[name], **overrides)
    return space, space.preset(name)
