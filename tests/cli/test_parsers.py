"""Every `nas` subcommand's parser: help text on every argument, its default in the help, and one
spelling per concept across subcommands (old spellings only as hidden, deprecated aliases)."""

from __future__ import annotations

import argparse

import pytest

from nas.cli import build_parser
from nas.cli._common import HelpFormatter, shows_default, walk

# concept (the option's dest) -> its one spelling in every subcommand
CANONICAL = {
    "n": ["-n", "--n"],
    "quiet": ["--quiet"],
    "overrides": ["--set"],
    "resolutions": ["--resolutions"],
    "num_classes": ["--num-classes"],
    "in_channels": ["--in-channels"],
    "width_mult": ["--width-mult"],
    "data_root": ["--data-root"],
    "seed": ["--seed"],
    "threads": ["--threads"],
    "config": ["--config"],
    "checkpoint": ["--checkpoint"],
    "table": ["--table"],
    "json": ["--json"],
}
# spellings a visible option must not use (the concept's canonical flag in brackets)
FORBIDDEN = {
    "--resolution": "--resolutions", "--res": "--resolutions", "--num-archs": "-n/--n", "--num": "-n/--n",
    "--count": "-n/--n", "--no-progress": "--quiet", "--silent": "--quiet", "--progress": "--quiet",
    "--override": "--set", "--overrides": "--set", "--data-dir": "--data-root", "--dataset-root": "--data-root",
    "--classes": "--num-classes", "--channels": "--in-channels", "--width": "--width-mult",
    "--num-threads": "--threads", "--nthreads": "--threads",
}
SHAPE = ["--resolutions", "--num-classes", "--in-channels", "--width-mult"]


def _options() -> list[tuple[str, argparse.ArgumentParser, argparse.Action]]:
    return [(cmd, parser, a) for cmd, parser in walk(build_parser()) for a in parser._actions
            if a.option_strings and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))]


def _hidden(action: argparse.Action) -> bool:
    return action.help is argparse.SUPPRESS


def test_every_argument_has_help_text() -> None:
    actions = [(cmd, a) for cmd, parser in walk(build_parser()) for a in parser._actions
               if not isinstance(a, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction))]
    assert len({cmd for cmd, _ in actions}) >= 17  # the walk reached the subcommands
    missing = [f"{cmd} {'/'.join(a.option_strings) or a.dest}" for cmd, a in actions if not (a.help or "").strip()]
    assert not missing, f"arguments without help text: {missing}"


def test_every_default_is_in_the_help() -> None:
    parsers = list(walk(build_parser()))
    assert all(p.formatter_class is HelpFormatter for _, p in parsers)
    lacking = []
    for cmd, parser, a in _options():
        text = parser._get_formatter()._expand_help(a) if a.help and not _hidden(a) else ""
        if shows_default(a) and f"(default: {a.default})" not in text:
            lacking.append(f"{cmd} {a.option_strings[-1]}: {text!r}")
        if shows_default(a) and "(default" in a.help:  # the formatter adds it: no second, stale one by hand
            lacking.append(f"{cmd} {a.option_strings[-1]}: gives its default by hand: {a.help!r}")
        if a.default is None and "default: None" in text:
            lacking.append(f"{cmd} {a.option_strings[-1]}: says 'default: None'")
    assert not lacking, f"options whose help lacks their default: {lacking}"


def test_one_spelling_per_concept() -> None:
    wrong = []
    for cmd, _, a in _options():
        if _hidden(a):
            continue
        wrong += [f"{cmd} {s} (use {FORBIDDEN[s]})" for s in a.option_strings if s in FORBIDDEN]
        if a.dest in CANONICAL and a.option_strings != CANONICAL[a.dest]:
            wrong.append(f"{cmd} {'/'.join(a.option_strings)} (use {'/'.join(CANONICAL[a.dest])})")
        for concept, spelling in CANONICAL.items():
            if set(spelling) & set(a.option_strings) and a.dest != concept:
                wrong.append(f"{cmd} {'/'.join(a.option_strings)} stores into {a.dest!r}, not {concept!r}")
    assert not wrong, f"spellings that differ from the other subcommands': {wrong}"


def test_same_concept_same_kind() -> None:
    """One option concept is a flag everywhere or takes a value everywhere (no `--json FILE` next to a
    `--json` flag), with the same type."""
    kinds: dict[str, set] = {}
    for cmd, _, a in _options():
        if not _hidden(a):
            kinds.setdefault(a.option_strings[-1], set()).add((a.nargs == 0, a.type, a.nargs))
    assert {flag: k for flag, k in kinds.items() if len(k) > 1} == {}


def test_shape_flags_come_together() -> None:
    flags: dict[str, set[str]] = {}
    for cmd, _, a in _options():
        flags.setdefault(cmd, set()).update(a.option_strings)
    partial = {cmd: sorted(set(SHAPE) - f) for cmd, f in flags.items() if "--resolutions" in f and set(SHAPE) - f}
    assert not partial, f"subcommands with --resolutions but not every shape flag: {partial}"
    assert len([cmd for cmd, f in flags.items() if "--resolutions" in f]) >= 6


def test_hidden_options_are_deprecated_aliases() -> None:
    """A hidden option shares its dest with a visible option of the same subcommand and says so when used."""
    orphans = []
    for cmd, parser, a in _options():
        if _hidden(a):
            visible = [b for b in parser._actions if b.dest == a.dest and not _hidden(b) and b.option_strings]
            if not visible or not getattr(a, "canonical", "") in visible[0].option_strings:
                orphans.append(f"{cmd} {a.option_strings}")
    assert not orphans, f"hidden options that alias no visible one: {orphans}"


@pytest.mark.parametrize("argv, dest, value", [
    (["space", "preset", "ofa_min", "--resolution", "32"], "resolutions", [32]),
    (["supernet", "sample-accuracy", "--checkpoint", "c.pt", "--out", "o", "--num-archs", "5"], "n", 5),
    (["search", "--config", "c.yaml", "--no-progress"], "quiet", True),
    (["supernet", "train", "--config", "c.yaml", "--no-progress"], "quiet", True),
    (["latency", "check", "--table", "t.csv", "--json", "c.json"], "json_out", "c.json"),
])
def test_old_spellings_still_parse_and_warn(capsys, argv, dest, value) -> None:
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    assert "is deprecated; use" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["list", "--help"], ["supernet", "train", "--help"], ["latency", "build", "--help"]])
def test_help_prints(capsys, argv) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "usage: nas" in out and "default: None" not in out
