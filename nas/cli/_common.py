"""What every ``nas`` subcommand shares: the help formatter and one definition per option concept.

One spelling per concept across subcommands (`tests/cli/test_parsers.py` checks it): ``-n/--n`` for
a count, ``--quiet`` for no progress bar, ``--set KEY=VALUE`` wherever a config is read, and the
shape flags (``--resolutions``, ``--num-classes``, ``--in-channels``, ``--width-mult``) wherever a
space is loaded. Old spellings stay as hidden aliases that warn (`add_alias`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Iterator, Sequence


def shows_default(action: argparse.Action) -> bool:
    """Whether `action`'s help gets "(default: X)": an option with a real default (not None, a flag's
    False, an empty list or a suppressed one)."""
    default = action.default
    return (bool(action.option_strings) and action.help is not argparse.SUPPRESS and action.nargs != 0
            and default is not None and default is not argparse.SUPPRESS and default != [])


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; every option with a default says it: "(default: X)"."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if shows_default(action) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def walk(parser: argparse.ArgumentParser, path: Sequence[str] = ("nas",)) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser under `parser` (itself first), with its command path, e.g. "nas latency build"."""
    yield " ".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, [*path, name])


class _DeprecatedAlias(argparse.Action):
    """An old spelling of an option: stores into the canonical option's dest and warns on stderr."""

    def __init__(self, option_strings: list[str], dest: str, canonical: str = "",
                 convert: Callable[[Any], Any] | None = None, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.canonical, self.convert = canonical, convert

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"nas: warning: {option_string} is deprecated; use {self.canonical}", file=sys.stderr)
        value = self.const if self.nargs == 0 else values
        setattr(namespace, self.dest, self.convert(value) if self.convert else value)


def add_alias(p: argparse.ArgumentParser, old: str, canonical: str, convert: Callable[[Any], Any] | None = None,
              **kwargs: Any) -> None:
    """Hidden deprecated spelling `old` of the option `canonical` of `p` (same dest, same type and
    nargs unless `kwargs` say otherwise; `convert` maps its value to the canonical option's)."""
    target = next(a for a in p._actions if canonical in a.option_strings)
    spec: dict[str, Any] = {"nargs": 0, "const": target.const} if target.nargs == 0 else \
        {"type": target.type, "nargs": target.nargs, "metavar": target.metavar}
    p.add_argument(old, dest=target.dest, action=_DeprecatedAlias, canonical=canonical, convert=convert,
                   default=argparse.SUPPRESS, help=argparse.SUPPRESS, **{**spec, **kwargs})


# ---------------------------------------------------------------------- the shared options
def add_count(p: argparse.ArgumentParser, default: int, help: str, old: Sequence[str] = ()) -> None:
    """``-n/--n N``: how many (archs, networks); `old`: earlier spellings kept as hidden aliases."""
    p.add_argument("-n", "--n", type=int, default=default, metavar="N", help=help)
    for spelling in old:
        add_alias(p, spelling, "--n")


def add_quiet(p: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bar (``--no-progress`` is a hidden alias)."""
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_alias(p, "--no-progress", "--quiet")


def add_overrides(p: argparse.ArgumentParser, example: str) -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.overrides``, applied by
    `nas.experiment.apply_overrides` to the config's mapping before it is checked."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a config value, e.g. {example}; dotted keys, list items by index, "
                        "values parsed as YAML (repeatable)")


def add_shape_args(p: argparse.ArgumentParser, resolutions_help: str = "input resolutions of the space") -> None:
    """The space's shape: ``--resolutions R [R ...]``, ``--num-classes``, ``--in-channels``, ``--width-mult``
    (each default: the space YAML's); load the space with `load_space_args`."""
    p.add_argument("--resolutions", type=int, nargs="+", default=None, metavar="R",
                   help=f"{resolutions_help}, replacing the space YAML's list (default: the space YAML's)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classes of the network head (default: the space YAML's)")
    p.add_argument("--in-channels", type=int, default=None, help="input channels (default: the space YAML's)")
    p.add_argument("--width-mult", type=float, default=None,
                   help="channel width multiplier (default: the space YAML's)")


def check_shape_args(args: argparse.Namespace) -> None:
    """`CLIError` naming the bad value of a shape flag (before the space is built)."""
    from nas.cli import CLIError

    for r in args.resolutions or ():
        if r < 1:
            raise CLIError(f"--resolutions: {r} is not a positive integer")
    if args.resolutions and len(set(args.resolutions)) != len(args.resolutions):
        raise CLIError(f"--resolutions: {args.resolutions} repeats a resolution")
    for flag, value in (("--num-classes", args.num_classes), ("--in-channels", args.in_channels),
                        ("--width-mult", args.width_mult)):
        if value is not None and not value > 0:
            raise CLIError(f"{flag}: {value} is not positive")


def shape_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The shape flags as `nas.load_space` / `nas.load_preset` keyword overrides (checked)."""
    check_shape_args(args)
    return {"resolutions": args.resolutions, "num_classes": args.num_classes, "in_channels": args.in_channels,
            "width_mult": args.width_mult}


def load_space_args(name: str, args: argparse.Namespace):  # noqa: ANN201 - nas.SearchSpace
    """Space `name` (built-in or YAML path) with the shape flags of `args` applied."""
    from nas import load_space

    return load_space(name, **shape_overrides(args))


__all__ = ["HelpFormatter", "add_alias", "add_count", "add_overrides", "add_quiet", "add_shape_args",
           "check_shape_args", "load_space_args", "shape_overrides", "shows_default", "walk"]
