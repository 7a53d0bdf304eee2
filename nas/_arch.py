"""Architectures as data: frozen, hashable block specs and the `Arch` they form.

An `Arch` is a plain value: stem, stages of `BlockSpec`s, head and input resolution.
It knows nothing about search spaces; `nas.SearchSpace` decides which archs are legal.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from typing import Any, Sequence

from nas._errors import HwnasError

OPS = ("conv", "ds", "mb")
"""Block kinds: regular conv, depthwise-separable conv, MBConv (inverted residual)."""
ACTS = ("relu", "relu6", "hswish")

_OP_TAGS = {"conv": "cn", "ds": "ds", "mb": "ir"}


class ArchError(HwnasError, ValueError):
    """An architecture (or its JSON) is malformed or outside a search space."""


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round `value` to the nearest multiple of `divisor`, never dropping more than 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_out_size(size: int, kernel: int, stride: int) -> int:
    """Spatial output size of a conv with 'same' padding (kernel // 2)."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def option_index(options: Sequence[Any], value: Any) -> int | None:
    """Index of the option `value` names (None if none): an equal option of its own type first,
    else an equal number (True never matches 1, nor 1.0 '1')."""
    for i, o in enumerate(options):
        if type(o) is type(value) and o == value:
            return i
    for i, o in enumerate(options):
        if (isinstance(o, (int, float)) and isinstance(value, (int, float)) and not isinstance(o, bool)
                and not isinstance(value, bool) and o == value):
            return i
    return None


@dataclass(frozen=True)
class BlockSpec:
    """One layer of the network.

    op: "conv" (k×k conv-BN-act, [SE]), "ds" (depthwise k×k, [SE], pointwise linear)
    or "mb" (pointwise expand, depthwise k×k, [SE], pointwise linear).
    se: squeeze-excite ratio of the expanded channels (0 = none).
    skip: identity residual; only legal when stride is 1 and in/out channels agree.
    mid: MBConv only: an explicit expanded width (a pruned layer, off any grid); 0 = in_channels·expand.
    """

    op: str
    kernel: int
    stride: int
    out_channels: int
    expand: int = 1
    se: float = 0.0
    skip: bool = False
    act: str = "relu"
    mid: int = 0

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ArchError(f"block op {self.op!r} is not one of {list(OPS)}")
        if not (isinstance(self.kernel, int) and self.kernel >= 1 and self.kernel % 2 == 1):
            raise ArchError(f"block kernel {self.kernel!r} must be an odd positive integer")
        if self.stride not in (1, 2):
            raise ArchError(f"block stride {self.stride!r} must be 1 or 2")
        if not (isinstance(self.out_channels, int) and self.out_channels >= 1):
            raise ArchError(f"block out_channels {self.out_channels!r} must be a positive integer")
        if not (isinstance(self.expand, int) and self.expand >= 1):
            raise ArchError(f"block expand {self.expand!r} must be a positive integer")
        if self.op != "mb" and self.expand != 1:
            raise ArchError(f"block op {self.op!r} takes no expand ratio (got {self.expand})")
        if not (0.0 <= float(self.se) < 1.0):
            raise ArchError(f"block se {self.se!r} must be in [0, 1)")
        if self.act not in ACTS:
            raise ArchError(f"block act {self.act!r} is not one of {list(ACTS)}")
        if not (isinstance(self.mid, int) and not isinstance(self.mid, bool) and self.mid >= 0):
            raise ArchError(f"block mid {self.mid!r} must be a non-negative integer (0: in_channels x expand)")
        if self.mid and self.op != "mb":
            raise ArchError(f"block op {self.op!r} takes no explicit mid width (got {self.mid})")
        object.__setattr__(self, "se", float(self.se))
        object.__setattr__(self, "skip", bool(self.skip))

    def mid_channels(self, in_channels: int) -> int:
        """Channels the squeeze-excite sees: the expanded width for MBConv, the depthwise width
        for "ds", the output width for "conv"."""
        if self.op == "conv":
            return self.out_channels
        if self.op == "mb":
            return self.mid or in_channels * self.expand
        return in_channels

    def with_mid(self, mid: int, in_channels: int) -> "BlockSpec":
        """This MBConv with `mid` expanded channels, in one spelling: a whole multiple of in_channels
        is an expand ratio (mid 0), any other width an explicit mid."""
        if mid % in_channels == 0:
            return replace(self, expand=mid // in_channels, mid=0)
        return replace(self, mid=mid)

    def to_dict(self) -> dict[str, Any]:
        """Plain fields; ``mid`` only when set (so archs on a space's grid keep their JSON and ids)."""
        return _plain(self)

    def se_channels(self, in_channels: int) -> int:
        """Bottleneck width of the squeeze-excite (0 when there is none)."""
        return make_divisible(self.mid_channels(in_channels) * self.se, 8) if self.se else 0

    def short(self) -> str:
        """timm-like tag, e.g. ``ir_k5_e6_c40_se`` (stride and residual only when set)."""
        parts = [_OP_TAGS[self.op], f"k{self.kernel}"]
        if self.stride != 1:
            parts.append(f"s{self.stride}")
        if self.op == "mb":
            parts.append(f"m{self.mid}" if self.mid else f"e{self.expand}")
        parts.append(f"c{self.out_channels}")
        if self.se:
            parts.append("se" if self.se == 0.25 else f"se{self.se:g}")
        if self.skip:
            parts.append("skip")
        return "_".join(parts)


@dataclass(frozen=True)
class HeadSpec:
    """Final 1×1 conv (+BN+act), global pool, optional 1×1 feature conv (+act, no BN), classifier."""

    channels: int
    feature_channels: int = 0
    act: str = "relu"

    def __post_init__(self) -> None:
        if not (isinstance(self.channels, int) and self.channels >= 1):
            raise ArchError(f"head channels {self.channels!r} must be a positive integer")
        if not (isinstance(self.feature_channels, int) and self.feature_channels >= 0):
            raise ArchError(f"head feature_channels {self.feature_channels!r} must be >= 0")
        if self.act not in ACTS:
            raise ArchError(f"head act {self.act!r} is not one of {list(ACTS)}")


@dataclass(frozen=True)
class BlockKey:
    """A layer as the latency table sees it: its spec plus the shape it runs on.

    kind is "stem", "block" or "head"; for the head, `out_channels` is the final conv
    width, `feature_channels` the optional feature conv and `num_classes` the classifier.
    """

    kind: str
    op: str
    in_hw: int
    in_channels: int
    out_channels: int
    kernel: int = 1
    stride: int = 1
    expand: int = 1
    se: float = 0.0
    skip: bool = False
    act: str = "relu"
    feature_channels: int = 0
    num_classes: int = 0
    mid: int = 0

    @classmethod
    def of(cls, spec: BlockSpec, in_channels: int, in_hw: int) -> "BlockKey":
        """The key of block `spec` run on `in_channels` × `in_hw` × `in_hw` inputs (one layer, one key:
        a width that is a whole multiple of in_channels as an expand ratio, any other as mid with expand 1)."""
        spec = spec.with_mid(spec.mid, in_channels) if spec.mid else spec
        return cls("block", spec.op, in_hw, in_channels, spec.out_channels, spec.kernel, spec.stride,
                   1 if spec.mid else spec.expand, spec.se, spec.skip, spec.act, mid=spec.mid)

    @property
    def out_hw(self) -> int:
        return 1 if self.kind == "head" else conv_out_size(self.in_hw, self.kernel, self.stride)

    def block_spec(self) -> BlockSpec:
        """The `BlockSpec` this key was made from (stem and blocks only)."""
        if self.kind == "head":
            raise ArchError("a head key has no BlockSpec; use head_spec()")
        return BlockSpec(self.op, self.kernel, self.stride, self.out_channels, self.expand,
                         self.se, self.skip, self.act, self.mid)

    def head_spec(self) -> HeadSpec:
        if self.kind != "head":
            raise ArchError(f"a {self.kind} key has no HeadSpec")
        return HeadSpec(self.out_channels, self.feature_channels, self.act)

    def to_dict(self) -> dict[str, Any]:
        """Plain fields; ``mid`` only when set (keys on a space's grid keep their ids)."""
        return _plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BlockKey":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ArchError(f"unknown block key field(s) {unknown}")
        return cls(**data)

    def short(self) -> str:
        if self.kind == "head":
            feat = f"_f{self.feature_channels}" if self.feature_channels else ""
            return f"head_{self.in_hw}x{self.in_hw}_i{self.in_channels}_c{self.out_channels}{feat}_n{self.num_classes}"
        return f"{self.kind}_{self.in_hw}x{self.in_hw}_i{self.in_channels}_{self.block_spec().short()}_{self.act}"


@dataclass(frozen=True)
class Arch:
    """A whole network: input resolution, stem conv, stages of blocks and head."""

    resolution: int
    stem: BlockSpec
    stages: tuple[tuple[BlockSpec, ...], ...]
    head: HeadSpec

    def __post_init__(self) -> None:
        if not (isinstance(self.resolution, int) and self.resolution >= 1):
            raise ArchError(f"resolution {self.resolution!r} must be a positive integer")
        if self.stem.op != "conv":
            raise ArchError(f"stem must be a 'conv' block, got {self.stem.op!r}")
        stages = []
        in_channels = self.stem.out_channels
        for s, stage in enumerate(self.stages):
            if not stage:
                raise ArchError(f"stage {s} has no layers")
            blocks = []
            for i, block in enumerate(stage):
                if not isinstance(block, BlockSpec):
                    raise ArchError(f"stage {s} layer {i} is not a BlockSpec: {block!r}")
                if block.skip and (block.stride != 1 or block.out_channels != in_channels):
                    raise ArchError(
                        f"stage {s} layer {i}: skip needs stride 1 and equal channels, "
                        f"got stride {block.stride}, {in_channels}->{block.out_channels}")
                blocks.append(block.with_mid(block.mid, in_channels) if block.mid else block)  # one spelling each
                in_channels = block.out_channels
            stages.append(tuple(blocks))
        object.__setattr__(self, "stages", tuple(stages))

    @property
    def blocks(self) -> tuple[BlockSpec, ...]:
        """All blocks, stage after stage."""
        return tuple(b for stage in self.stages for b in stage)

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(stage) for stage in self.stages)

    def block_keys(self, num_classes: int, in_channels: int) -> list[BlockKey]:
        """Latency-table keys of every layer, in execution order (stem, blocks, head)."""
        keys = [BlockKey("stem", "conv", self.resolution, in_channels, self.stem.out_channels,
                         self.stem.kernel, self.stem.stride, act=self.stem.act)]
        hw = conv_out_size(self.resolution, self.stem.kernel, self.stem.stride)
        channels = self.stem.out_channels
        for b in self.blocks:
            keys.append(BlockKey.of(b, channels, hw))
            hw = conv_out_size(hw, b.kernel, b.stride)
            channels = b.out_channels
        keys.append(BlockKey("head", "head", hw, channels, self.head.channels, act=self.head.act,
                             feature_channels=self.head.feature_channels, num_classes=num_classes))
        return keys

    def short(self) -> str:
        """A one-line human string, e.g. ``r224 cn_k3_s2_c32 | ds_k3_c16 | ir_k3_s2_e6_c24 ...``."""
        stages = " | ".join(" ".join(b.short() for b in stage) for stage in self.stages)
        return f"r{self.resolution} {self.stem.short()} | {stages} | head_c{self.head.channels}"

    def __str__(self) -> str:
        return self.short()

    def to_dict(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution,
            "stem": self.stem.to_dict(),
            "stages": [[b.to_dict() for b in stage] for stage in self.stages],
            "head": asdict(self.head),
        }

    @classmethod
    def from_dict(cls, data: Any) -> "Arch":
        if not isinstance(data, dict):
            raise ArchError(f"an arch must be a JSON object, got {type(data).__name__}")
        expected = {"resolution", "stem", "stages", "head"}
        missing, unknown = sorted(expected - set(data)), sorted(set(data) - expected)
        if missing or unknown:
            raise ArchError(f"arch JSON: missing field(s) {missing}, unknown field(s) {unknown}")
        if not isinstance(data["stages"], list) or not all(isinstance(s, list) for s in data["stages"]):
            raise ArchError("arch JSON: 'stages' must be a list of lists of blocks")
        stem = _spec_from_dict(BlockSpec, data["stem"], "stem")
        stages = tuple(
            tuple(_spec_from_dict(BlockSpec, b, f"stage {s} layer {i}") for i, b in enumerate(stage))
            for s, stage in enumerate(data["stages"]))
        head = _spec_from_dict(HeadSpec, data["head"], "head")
        return cls(data["resolution"], stem, stages, head)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str, source: str = "arch JSON") -> "Arch":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ArchError(f"{source}: malformed JSON ({err})") from None
        try:
            return cls.from_dict(data)
        except ArchError as err:
            raise ArchError(f"{source}: {err}") from None


# ---------------------------------------------------------------------- per-layer counters
@lru_cache(maxsize=None)
def key_params(key: BlockKey, bn_per_channel: int = 2) -> int:
    """Parameters of one layer; each BN adds `bn_per_channel` per channel (2 trained, 1 folded into a bias)."""
    b = bn_per_channel
    if key.kind == "stem":
        return key.kernel**2 * key.in_channels * key.out_channels + b * key.out_channels
    if key.kind == "head":
        n = key.in_channels * key.out_channels + b * key.out_channels
        width = key.out_channels
        if key.feature_channels:
            n += key.out_channels * key.feature_channels
            width = key.feature_channels
        return n + width * key.num_classes + key.num_classes
    spec, cin = key.block_spec(), key.in_channels
    mid, cout = spec.mid_channels(cin), spec.out_channels
    if spec.op == "conv":
        n = spec.kernel**2 * cin * cout + b * cout
    else:
        n = spec.kernel**2 * mid + b * mid + mid * cout + b * cout
        if spec.op == "mb":
            n += cin * mid + b * mid
    if spec.se:
        r = spec.se_channels(cin)
        n += 2 * mid * r + r + mid
    return n


def key_mparams(key: BlockKey) -> float:
    """Million weights of one layer, BN folded into the convs (a bias per output channel)."""
    return key_params(key, bn_per_channel=1) / 1e6


@lru_cache(maxsize=None)
def key_macs(key: BlockKey) -> int:
    """Multiply-accumulates of one layer (convs and linear layers)."""
    hw_out = key.out_hw
    if key.kind == "stem":
        return key.kernel ** 2 * key.in_channels * key.out_channels * hw_out ** 2
    if key.kind == "head":
        n = key.in_hw ** 2 * key.in_channels * key.out_channels
        width = key.out_channels
        if key.feature_channels:
            n += key.out_channels * key.feature_channels
            width = key.feature_channels
        return n + width * key.num_classes
    spec, cin, hw = key.block_spec(), key.in_channels, key.in_hw
    mid = spec.mid_channels(cin)
    if spec.op == "conv":
        n = spec.kernel ** 2 * cin * spec.out_channels * hw_out ** 2
    else:
        n = spec.kernel ** 2 * mid * hw_out ** 2 + mid * spec.out_channels * hw_out ** 2
        if spec.op == "mb":
            n += cin * mid * hw ** 2
    if spec.se:
        n += 2 * mid * spec.se_channels(cin)
    return n


def _plain(spec: "BlockSpec | BlockKey") -> dict[str, Any]:
    return {k: v for k, v in asdict(spec).items() if k != "mid" or v}


def _spec_from_dict(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ArchError(f"{where}: expected an object, got {data!r}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ArchError(f"{where}: unknown field(s) {unknown}")
    try:
        return cls(**data)
    except TypeError as err:
        raise ArchError(f"{where}: {err}") from None
    except ArchError as err:
        raise ArchError(f"{where}: {err}") from None

