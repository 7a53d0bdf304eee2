"""Every `nas` subcommand's parser: every argument says what it is for in `--help`."""

from __future__ import annotations

import argparse

from nas.cli import build_parser


def _walk(parser: argparse.ArgumentParser, path: list[str]):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, [*path, name])
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield " ".join(path), action


def test_every_argument_has_help_text() -> None:
    actions = list(_walk(build_parser(), ["nas"]))
    assert len({cmd for cmd, _ in actions}) >= 15  # the walk reached the subcommands
    missing = [f"{cmd} {'/'.join(a.option_strings) or a.dest}" for cmd, a in actions if not (a.help or "").strip()]
    assert not missing, f"arguments without help text: {missing}"
