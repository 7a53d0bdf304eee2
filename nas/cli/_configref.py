"""``python -m nas.cli._configref [--check]``: ``docs/config.md``, every YAML key of the configs.

Generated from the config dataclasses the loaders check against (`nas.experiment.ExperimentConfig`,
each strategy's config, `ProxylessConfig`, the supernet training file's sections) and from the
keyword options `nas.experiment.build_evaluator` checks; a key's description is its attribute
docstring. ``tests/cli/test_configref.py`` fails when ``docs/config.md`` differs from a fresh run.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import re
import sys
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import yaml

OUT = Path(__file__).resolve().parents[2] / "docs" / "config.md"
COMMAND = "python -m nas.cli._configref"
Row = tuple[str, str, str, str]  # key, type, default, description


@functools.cache
def attribute_docs(cls: type) -> dict[str, str]:
    """The docstrings under a class's annotated attributes, each as one line."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    return {node.target.id: " ".join(inspect.cleandoc(nxt.value.value).split()).replace("``", "`")
            for node, nxt in zip(body, body[1:])
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)}


def type_name(tp: Any) -> str:
    """A YAML reader's name for a type hint (``Many[int] | None`` -> "int or list of int, or null")."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        inner = args[0]
        if typing.get_origin(inner) is list and any("BeforeValidator" in type(m).__name__ for m in args[1:]):
            item = type_name(typing.get_args(inner)[0])  # `Many`: one item or a list
            return f"{item} or list of {item}"
        return type_name(inner)
    if origin in (typing.Union, types.UnionType):
        named = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(named) + (", or null" if type(None) in args else "")
    if origin in (list, tuple):
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict or tp is dict:
        return "mapping"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return {Any: "any", str: "str", int: "int", float: "float", bool: "bool"}.get(tp, str(tp))


def _value(value: Any) -> str:
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
        value = [{k: v for k, v in dataclasses.asdict(v).items() if v not in (None, {}, [])} for v in value]
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return f"`{text.removesuffix('...').strip()}`"


def _default(f: dataclasses.Field) -> str:
    """A field's default as YAML ("" for a section, whose keys have their own)."""
    if f.default is not dataclasses.MISSING:
        return _value(f.default)
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return "" if dataclasses.is_dataclass(value) else _value(value)
    return "required"


def _section_class(tp: Any) -> tuple[type | None, bool]:
    """The dataclass a hint holds (and whether as a list of them), e.g. ``Many[TableConfig] | None``."""
    while True:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Annotated:
            tp = args[0]
        elif origin in (typing.Union, types.UnionType):
            tp = next(a for a in args if a is not type(None))
        elif origin in (list, tuple) and args and dataclasses.is_dataclass(args[0]):
            return args[0], True
        else:
            return (tp, False) if dataclasses.is_dataclass(tp) else (None, False)


def rows(cls: type, prefix: str = "", skip: Sequence[str] = ()) -> Iterator[Row]:
    """A row per key of dataclass `cls` (at key path `prefix`), its sections' keys after it."""
    hints = typing.get_type_hints(cls, include_extras=True)
    docs = attribute_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        key = f"{prefix}{f.name}"
        section, many = _section_class(hints[f.name])
        yield key, type_name(hints[f.name]), _default(f), docs.get(f.name, "")
        if section is not None:
            yield from rows(section, f"{key}.N." if many else f"{key}.")


def option_docs(fn: Callable[..., Any]) -> dict[str, str]:
    """An option's description from `fn`'s docstring: a paragraph line ``name: text`` (its
    continuation lines indented under it or running on until a blank line), as one line."""
    docs: dict[str, str] = {}
    name, params = None, inspect.signature(fn).parameters
    for line in inspect.cleandoc(fn.__doc__ or "").splitlines():
        m = re.match(r"^(\w+): (.+)$", line)
        if m and m.group(1) in params:
            name = m.group(1)
            docs[name] = m.group(2).strip()
        elif name and line.strip():
            docs[name] += " " + line.strip()
        else:
            name = None
    return docs


def option_rows(fn: Callable[..., Any], skip: Sequence[str], seeded: bool) -> Iterator[Row]:
    """A row per keyword option of `fn` (as `nas.experiment.build_evaluator` checks them), described by
    `option_docs`."""
    docs = option_docs(fn)
    for p in inspect.signature(fn).parameters.values():
        if p.name in ("self", "cls", *skip) or p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            continue
        annotation = p.annotation if isinstance(p.annotation, str) else type_name(p.annotation)
        default = "required" if p.default is p.empty else _value(p.default)
        if seeded and p.name == "seed":
            default = "the experiment's `seed`"
        doc = docs.get(p.name, "")
        yield p.name, annotation.replace(" | None", ", or null").replace(" | ", " or "), default, doc[:1].upper() + doc[1:]


def _table(body: Sequence[Row]) -> list[str]:
    lines = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    cells = [(f"`{key}`", *rest) for key, *rest in body]
    return lines + [f"| {' | '.join(cell.replace('|', chr(92) + '|') for cell in row)} |" for row in cells]


def _doc(obj: Any) -> str:
    """The first sentence of `obj`'s own docstring ("" without one), in markdown quotes."""
    from nas.cli._list import first_sentence

    return first_sentence(inspect.cleandoc(obj.__doc__ or ""), plain=False)


def _module_doc(obj: Any) -> str:
    return _doc(sys.modules[obj.__module__])


def _evaluators() -> dict[str, tuple[Callable[..., Any], tuple[str, ...], bool]]:
    """`evaluator.name` -> (what its options go to, arguments that are not options, seeded by the
    experiment), as `nas.experiment.build_evaluator` builds it."""
    from nas.evaluators import SupernetEvaluator, SyntheticEvaluator, TrainEvaluator
    from nas.experiment._config import EVALUATORS
    from nas.supernet import load_accuracy_predictor

    table = {"synthetic": (SyntheticEvaluator.__init__, ("space", "latency"), True),
             "predictor": (load_accuracy_predictor, ("space",), False),
             "supernet": (SupernetEvaluator.from_checkpoint, ("space", "latency"), False),
             "train": (TrainEvaluator.__init__, ("space", "latency"), True)}
    _same(list(table), list(EVALUATORS), "evaluators")
    return table


def _same(mine: list[str], theirs: list[str], what: str) -> None:
    """What this module mirrors by hand still matches the code's registry."""
    if mine != theirs:
        raise RuntimeError(f"{what} are now {theirs}, not {mine}: update nas/cli/_configref.py")


def render() -> str:
    """The whole of ``docs/config.md``."""
    from nas._space_yaml import OVERRIDABLE
    from nas.experiment import ExperimentConfig, SpaceConfig
    from nas.experiment._config import DERIVING_STRATEGIES
    from nas.proxyless._search import ProxylessConfig
    from nas.strategies import STRATEGIES
    from nas.supernet._config import _File

    out = ["# Config reference", "",
           f"Generated by `{COMMAND}` from the config dataclasses; do not edit by hand (a test fails when it",
           "is out of date). Unknown keys are errors naming the key. On the command line, `--set KEY=VALUE`",
           "overrides any key (dotted path, `N` a list index, the value parsed as YAML).", "",
           "## Experiment (`nas search --config FILE`)", "",
           "`strategy:` (one mapping) may stand for `strategies:` (a list of one); `--set strategy.KEY=...` then",
           "addresses it.", "", *_table(list(rows(ExperimentConfig))), "",
           "## Strategy options (`strategies.N.options`, by `strategies.N.name`)", ""]
    for name, (cls, config_cls, fixed) in STRATEGIES.items():
        shown = ", ".join(f"{k}: {v}" for k, v in fixed.items())
        out += [f"### {name}", "", _module_doc(cls) + (f" Fixed: `{shown}`." if shown else ""), ""]
        body = list(rows(config_cls, skip=tuple(fixed)))
        out += [*_table(body), ""] if body else ["No options.", ""]
    _same(["proxyless"], list(DERIVING_STRATEGIES), "deriving strategies")
    proxyless = DERIVING_STRATEGIES["proxyless"]
    out += ["### proxyless", "", f"{_module_doc(proxyless)} {_doc(proxyless.build)}", "",
            *_table(list(rows(ProxylessConfig))), "",
            "## Evaluator options (`evaluator.options`, by `evaluator.name`)", ""]
    for name, (fn, skip, seeded) in _evaluators().items():
        owner = getattr(sys.modules[fn.__module__], fn.__qualname__.split(".")[0])
        own = _doc(owner if fn.__name__ == "__init__" else fn)
        out += [f"### {name}", "", _module_doc(fn) + (f" {own}" if own else ""), ""]
        out += [*_table(list(option_rows(fn, skip, seeded))), ""]
    _same(sorted(["name", *OVERRIDABLE]), sorted(f.name for f in dataclasses.fields(SpaceConfig)), "space keys")
    supernet = list(rows(_File))
    at = next(i for i, row in enumerate(supernet) if row[0] == "space") + 1
    supernet[at:at] = supernet_space_rows()
    out += ["## Supernet training (`nas supernet train --config FILE`)", "",
            "`--data-root DIR` sets `data.root`. A rerun resumes from `output_dir`'s checkpoint only with the same",
            "config (every key but `output_dir`).", "", *_table(supernet)]
    return "\n".join(line.rstrip() for line in out) + "\n"


def supernet_space_rows() -> list[Row]:
    """The supernet file's ``space`` keys: the experiment's space keys, classes and channels from the data."""
    from nas.experiment import SpaceConfig

    fixed = {"name": ("required", None), "num_classes": ("the dataset's", "Must match the dataset (default: its classes)."),
             "in_channels": ("the dataset's", "Must match the dataset (default: its channels).")}
    out = []
    for key, kind, default, doc in rows(SpaceConfig):
        default, new_doc = fixed.get(key, (default, None))
        out.append((f"space.{key}", kind, default, new_doc or doc))
    return out


def undocumented() -> list[str]:
    """Config keys and evaluator options without a description."""
    missing = [row[0] for row in render_rows() if not row[3]]
    for name, (fn, skip, seeded) in _evaluators().items():
        missing += [f"evaluator {name}: {row[0]}" for row in option_rows(fn, skip, seeded) if not row[3]]
    return missing


def render_rows() -> Iterator[Row]:
    """Every row of the config dataclasses (not the evaluator options)."""
    from nas.experiment import ExperimentConfig
    from nas.proxyless._search import ProxylessConfig
    from nas.strategies import STRATEGIES
    from nas.supernet._config import _File

    yield from rows(ExperimentConfig)
    for _, config_cls, fixed in STRATEGIES.values():
        yield from rows(config_cls, skip=tuple(fixed))
    yield from rows(ProxylessConfig)
    yield from rows(_File)
    yield from supernet_space_rows()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    text = render()
    if "--check" in argv:
        current = OUT.read_text() if OUT.is_file() else ""
        if current != text:
            print(f"{OUT} is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
