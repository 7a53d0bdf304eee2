"""The ``nas`` command line: ``nas space ...``, ``nas model ...``, ``nas latency ...`` and more.

Each command group lives in its own module with a ``register(subparsers)`` function; heavy
imports (torch, onnxruntime) happen inside the commands, so ``nas --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from nas._errors import HwnasError

_COMMAND_MODULES = (
    "nas.cli._space",
    "nas.cli._model",
    "nas.cli._latency",
    "nas.cli._supernet",
    "nas.cli._finetune",
    "nas.cli._compress",
    "nas.cli._search",
    "nas.cli._list",
)


class CLIError(HwnasError):
    """A bad command-line argument."""


def build_parser() -> argparse.ArgumentParser:
    """The ``nas`` parser: every command group's subparsers, every one with `HelpFormatter`."""
    from nas import __version__
    from nas.cli._common import HelpFormatter, walk

    parser = argparse.ArgumentParser(prog="nas", description="hwnas: hardware-aware neural architecture search")
    parser.add_argument("--version", action="version", version=f"hwnas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:  # command group not part of this build
                continue
            raise
        module.register(sub)
    for _, p in walk(parser):  # defaults in every --help, descriptions as written
        p.formatter_class = HelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (HwnasError, FileNotFoundError) as err:
        print(f"nas: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and friends
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("nas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
