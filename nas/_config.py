"""The one config loader: YAML files and mappings into (nested) dataclasses, with one `ConfigError`.

`load(cls, raw, where)` validates a mapping against the stdlib dataclass `cls` with pydantic: unknown
keys are errors, an int is taken for a float and a list for a tuple, nothing else is coerced, and
``__post_init__`` checks run. The first problem is one line naming the key's path (as ``--set`` does)::

    search.n_trails: unknown key; allowed: ['max_tries', 'n_trials', 'progress', 'storage']
    phases.0.steps: missing key
    checkpoint_every_steps: expected int, got 'often'

Strict pydantic takes a mapping for a dataclass only in JSON mode (Python mode wants an instance),
so the mapping is validated in its JSON form: exactly the plain values YAML gives.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Mapping, TypeVar

import pydantic
import yaml

from nas._errors import HwnasError

T = TypeVar("T")
Many = Annotated[list[T], pydantic.BeforeValidator(lambda v: v if isinstance(v, list) else [v])]
"""A list field that also takes one item (``x: 5`` for ``x: [5]``)."""
Section = Annotated[T, pydantic.BeforeValidator(lambda v: {} if v is None else v)]
"""A dataclass field that takes an empty YAML value (``search:``) for its defaults."""


class ConfigError(HwnasError):
    """A bad config file, key or value (experiment, supernet, strategy or ProxylessNAS options), naming
    the key. A config's own ``__post_init__`` checks raise its package's error (`SearchError`, ...)."""


def read_yaml(path: str | Path) -> Any:
    """The content of a YAML file; `ConfigError` if it does not exist or does not parse."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: malformed YAML ({err})") from None


@functools.cache
def _adapter(cls: type) -> pydantic.TypeAdapter:
    # pydantic takes a config for a container, not for a dataclass (nested dataclasses inherit it)
    return pydantic.TypeAdapter(list[cls], config=pydantic.ConfigDict(extra="forbid", strict=True))


def load(cls: type[T], raw: Any, where: str = "", fixed: Mapping[str, Any] | None = None) -> T:
    """Dataclass `cls` from mapping `raw` (its key path `where`); `fixed` values are set, not given."""
    fixed = dict(fixed or {})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {raw!r}")
    taken = sorted(set(raw) & set(fixed))
    if taken:
        raise ConfigError(_unknown(cls, where, (), taken, fixed))
    try:
        text = json.dumps([{**raw, **fixed}])
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where or 'config'}: not a plain YAML value ({err})") from None
    try:
        return _adapter(cls).validate_json(text)[0]
    except pydantic.ValidationError as err:
        raise ConfigError(_message(cls, where, err.errors(include_url=False), fixed)) from None


def _path(where: str, loc: tuple) -> str:
    return ".".join(map(str, (where, *loc) if where else loc)) or "config"


def _message(cls: type, where: str, errors: list[Any], fixed: dict[str, Any]) -> str:
    first = errors[0]
    loc, kind, value = first["loc"][1:], first["type"], first["input"]
    if kind == "unexpected_keyword_argument":
        keys = [e["loc"][-1] for e in errors if e["type"] == kind and e["loc"][1:-1] == loc[:-1]]
        return _unknown(cls, where, loc[:-1], keys, fixed)
    if kind == "missing":
        return f"{_path(where, loc)}: missing key"
    if kind.endswith(("_type", "_from_float")):
        name = kind.split("_")[0]
        expected = {"string": "str", "tuple": "list", "dict": "a mapping", "dataclass": "a mapping"}.get(name, name)
        return f"{_path(where, loc)}: expected {expected}, got {value!r}"
    error = first.get("ctx", {}).get("error")
    return f"{_path(where, loc)}: {error or first['msg']}"


def _unknown(cls: type, where: str, parent: tuple, keys: list[Any], fixed: dict[str, Any]) -> str:
    for part in parent:  # the dataclass at `parent`
        if isinstance(part, str):
            cls = typing.get_type_hints(cls)[part]
        while typing.get_origin(cls) in (list, tuple, typing.Union, types.UnionType):
            cls = next(a for a in typing.get_args(cls) if a is not type(None))
    allowed = sorted(f.name for f in dataclasses.fields(cls) if parent or f.name not in fixed)
    return f"{', '.join(_path(where, (*parent, k)) for k in keys)}: unknown key{'s' * (len(keys) > 1)}; allowed: {allowed}"


__all__ = ["ConfigError", "Many", "Section", "load", "read_yaml"]
