"""A search space's YAML declaration: its keys, stage parsing, preset specs and the files.

`nas._space.SearchSpace` is built from what this module parses; nothing here needs a space object
(preset helpers return choices, which the space decodes).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from nas._arch import ACTS
from nas._errors import HwnasError

ATTRS = ("op", "kernel", "expand", "se", "skip", "width", "depth")
"""Stage attributes a space may fix or search over."""
_OP_ALIASES = {"conv": ("conv", 1), "ds": ("ds", 1), "mb": ("mb", None)}
TOP_KEYS = {"name", "description", "num_classes", "in_channels", "resolutions", "width_mult",
             "stem", "head", "defaults", "stages", "presets", "preset_families"}
_STAGE_KEYS = set(ATTRS) | {"stride", "act", "choices", "per_layer"}
OVERRIDABLE = ("num_classes", "in_channels", "resolutions", "width_mult", "stem_stride")
"""Space parameters `load_space` accepts as keyword overrides."""

Choice = int | float | str | bool


class SpaceError(HwnasError, ValueError):
    """A search-space file, name or parameter is invalid."""


def parse_op(value: str) -> tuple[str, int | None]:
    """'conv' -> ('conv', 1); 'mb6' -> ('mb', 6); 'mb' -> ('mb', None: expand chosen elsewhere)."""
    if value in _OP_ALIASES:
        return _OP_ALIASES[value]
    if isinstance(value, str) and value.startswith("mb") and value[2:].isdigit():
        return "mb", int(value[2:])
    raise SpaceError(f"unknown op {value!r}: use conv, ds, mb or mbN (MBConv with expand ratio N)")


@dataclass(frozen=True)
class StageDef:
    """One stage of a space: fixed attributes, choices, and which choices are made per layer."""

    stride: int
    act: str
    fixed: Mapping[str, Any]
    choices: Mapping[str, tuple[Choice, ...]]
    per_layer: frozenset[str]

    def options(self, attr: str) -> tuple[Choice, ...]:
        return self.choices[attr] if attr in self.choices else (self.fixed[attr],)

    @property
    def max_depth(self) -> int:
        return max(self.options("depth"))


def parse_stage(raw: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> StageDef:
    """One stage of the declaration (`defaults` merged in); `where` names it in errors."""
    if not isinstance(raw, Mapping):
        raise SpaceError(f"{where}: expected a mapping, got {raw!r}")
    unknown = sorted(set(raw) - _STAGE_KEYS)
    if unknown:
        raise SpaceError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_STAGE_KEYS)}")
    merged: dict[str, Any] = {k: v for k, v in defaults.items() if k not in ("choices", "per_layer")}
    merged.update({k: v for k, v in raw.items() if k not in ("choices", "per_layer")})
    choices = dict(defaults.get("choices", {}) or {})
    choices.update(raw.get("choices", {}) or {})
    # a stage that fixes an attribute overrides a default choice of it
    for attr in list(choices):
        if attr in raw and attr not in (raw.get("choices") or {}):
            del choices[attr]
    per_layer = frozenset(raw.get("per_layer", defaults.get("per_layer", [])) or [])
    for attr, opts in choices.items():
        if attr not in ATTRS:
            raise SpaceError(f"{where}: unknown choice {attr!r}; choices are {list(ATTRS)}")
        if not isinstance(opts, list) or not opts or len(set(map(repr, opts))) != len(opts):
            raise SpaceError(f"{where}: choice {attr!r} needs a list of distinct options, got {opts!r}")
    if not per_layer <= set(choices) or per_layer & {"depth", "width", "skip", "op"}:
        raise SpaceError(f"{where}: per_layer {sorted(per_layer)} must name kernel/expand/se choices")
    fixed = {k: merged[k] for k in ATTRS if k in merged and k not in choices}
    fixed.setdefault("se", 0.0)
    fixed.setdefault("skip", False)
    missing = [a for a in ("op", "kernel", "width", "depth") if a not in fixed and a not in choices]
    if missing:
        raise SpaceError(f"{where}: attribute(s) {missing} are neither fixed nor a choice")
    stride = merged.get("stride", 1)
    act = merged.get("act", "relu")
    if act not in ACTS:
        raise SpaceError(f"{where}: act {act!r} is not one of {list(ACTS)}")
    stage = StageDef(int(stride), act, fixed,
                     {k: tuple(v) for k, v in choices.items()}, per_layer)
    for op in stage.options("op"):
        base, expand = parse_op(op)
        if expand is None and "expand" not in choices and "expand" not in fixed:
            raise SpaceError(f"{where}: op 'mb' needs an expand ratio (fixed or a choice)")
    if min(stage.options("depth")) < 1:
        raise SpaceError(f"{where}: depth options must be >= 1")
    return stage


def positive_int(value: Any, what: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpaceError(f"{source}: {what} must be a positive integer, got {value!r}")
    return value


# A preset family is a hand-design recipe with a size knob (e.g. MobileNetV2's: kernel 3 and one
# expand ratio everywhere, one depth per stage), for baselines scaled to a latency budget.
def parse_families(stages: Sequence[StageDef], raw: Mapping[str, Any], source: str) -> dict[str, dict[str, Any]]:
    searched = {attr for st in stages for attr in st.choices}
    out = {}
    for name, spec in raw.items():
        where = f"{source}: preset_families.{name}"
        fixed, scale = dict(spec.get("fixed", {}) or {}), list(spec.get("scale", []) or [])
        unknown = sorted((set(fixed) | set(scale)) - searched)
        if unknown or not scale:
            raise SpaceError(f"{where}: 'fixed' and 'scale' must name choices of the space "
                             f"({sorted(searched)}), 'scale' at least one; got fixed={fixed}, scale={scale}")
        out[name] = {"description": str(spec.get("description", "")), "fixed": fixed, "scale": scale}
    return out


def preset_choices(space_stages: Sequence[StageDef], resolutions: Sequence[int], spec: Mapping[str, Any], where: str,
                   resolution: int | None) -> dict[str, Choice]:
    """The choices a preset declaration `spec` names (at `resolution`, default its declared one)."""
    stages = spec.get("stages", [])
    if len(stages) != len(space_stages):
        raise SpaceError(f"{where}: {len(stages)} stages given, the space has {len(space_stages)}")
    if resolution is None:
        declared = spec.get("resolution", "max")
        resolution = {"max": resolutions[-1], "min": resolutions[0]}.get(declared, declared)
    choices: dict[str, Choice] = {"resolution": resolution}
    for i, (st, raw) in enumerate(zip(space_stages, stages)):
        depth = raw.get("depth", st.options("depth")[0])
        for attr, opts in st.choices.items():
            value = raw.get(attr, opts[0] if attr != "depth" else depth)
            if attr in st.per_layer:
                values = value if isinstance(value, list) else [value] * depth
                if len(values) != depth:
                    raise SpaceError(f"{where}: stage {i} {attr} lists {len(values)} values for depth {depth}")
                for j in range(st.max_depth):
                    choices[f"s{i}.l{j}.{attr}"] = values[j] if j < depth else opts[0]
            else:
                choices[f"s{i}.{attr}"] = value
    return choices


def family_choices(space_stages: Sequence[StageDef], resolutions: Sequence[int], fam: Mapping[str, Any], where: str,
                   resolution: int | None) -> list[dict[str, Choice]]:
    """The choices of each member of preset family `fam` (see `SearchSpace.preset_family`)."""
    options = []
    for attr in fam["scale"]:
        stage = next(st for st in space_stages if attr in st.choices)
        options.append(stage.options(attr))
    members = []
    for combo in itertools.product(*options):
        uniform = {**fam["fixed"], **dict(zip(fam["scale"], combo))}
        stages = [{a: v for a, v in uniform.items() if a in st.choices} for st in space_stages]
        members.append(preset_choices(space_stages, resolutions, {"stages": stages}, where, resolution))
    return members


# ---------------------------------------------------------------------- files
def _builtin_dir() -> Any:
    return resources.files("search_spaces")


def list_spaces() -> list[str]:
    """Names of the built-in spaces."""
    return sorted(p.name[:-5] for p in _builtin_dir().iterdir() if p.name.endswith(".yaml"))


def read_declaration(name_or_path: str | Path, **overrides: Any) -> tuple[dict[str, Any], str]:
    """The declaration (overrides applied) of a built-in space name or a YAML path, and its source."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise SpaceError(f"search space file {str(path)!r} does not exist")
        text, source = path.read_text(), str(path)
    else:
        name = str(name_or_path)
        if name not in list_spaces():
            raise SpaceError(f"unknown search space {name!r}; built-in spaces: {', '.join(list_spaces())} "
                             "(or give the path of a YAML file)")
        text, source = (_builtin_dir() / f"{name}.yaml").read_text(), f"{name}.yaml"
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpaceError(f"{source}: malformed YAML ({err})") from None
    if not isinstance(config, dict):
        raise SpaceError(f"{source}: expected a mapping at the top level")
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise SpaceError(f"unknown space parameter(s) {unknown}; allowed: {list(OVERRIDABLE)}")
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "stem_stride":
            config["stem"] = {**config["stem"], "stride": value}
        else:
            config[key] = list(value) if key == "resolutions" else value
    return config, source
