"""``nas model summary ARCH.json``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    model = sub.add_parser("model", help="inspect models built from archs")
    cmds = model.add_subparsers(dest="model_command", required=True, metavar="SUBCOMMAND")
    p = cmds.add_parser("summary", help="params, MACs and a layer table of an arch JSON file")
    p.add_argument("arch", help="arch JSON file (as written by `nas space preset` or `nas results --export-best`)")
    p.add_argument("--num-classes", type=int, default=1000, help="classes of the network head")
    p.add_argument("--in-channels", type=int, default=3, help="input channels")
    p.add_argument("--json", action="store_true", help="print one JSON object only (layers, params, MACs)")
    p.set_defaults(func=_summary)


def read_arch(path: str):  # noqa: ANN201 - returns nas.Arch
    """Read an arch JSON file (a single arch, or the first line of a JSON-lines file)."""
    from nas import Arch
    from nas._errors import HwnasError

    file = Path(path)
    if not file.is_file():
        raise HwnasError(f"arch file {path!r} does not exist")
    text = file.read_text().strip()
    lines = text.splitlines()
    if len(lines) > 1 and lines[0].startswith("{") and lines[0].endswith("}"):  # JSON lines: take the first
        text = lines[0]
    return Arch.from_json(text, source=path)


def add_subnet_source(p: argparse.ArgumentParser, model_help: str) -> None:
    """``--arch`` (a subnet of the checkpoint's supernet) or ``--model`` (a model file), exactly one."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--arch", help="arch JSON file (a point of the supernet's space)")
    source.add_argument("--model", help=model_help)


def load_subnet(args: argparse.Namespace, supernet):  # noqa: ANN001, ANN201 - a nas.Supernet -> nas.Network
    """The network `add_subnet_source` named: the model file as saved (any widths, its own arch), or the
    supernet's subnet for the arch (`extract` checks that it is a point of the space)."""
    from nas.supernet import extract, load_extracted

    return load_extracted(args.model) if args.model else extract(supernet, read_arch(args.arch))


def _summary(args: argparse.Namespace) -> int:
    from nas import count_macs, count_params, layer_table

    arch = read_arch(args.arch)
    rows = layer_table(arch, args.num_classes, args.in_channels)
    params = count_params(arch, args.num_classes, args.in_channels)
    macs = count_macs(arch, args.num_classes, args.in_channels)
    if args.json:
        import json

        print(json.dumps({"arch": arch.short(), "resolution": arch.resolution, "blocks": len(arch.blocks),
                          "params": params, "macs": macs, "layers": rows}, indent=2, default=str))
        return 0
    width = max(len(r["spec"]) for r in rows)
    print(f"{'layer':9s} {'spec':{width}s} {'input':>14s} {'output':>14s} {'params':>10s} {'MMACs':>9s}")
    for r in rows:
        print(f"{r['layer']:9s} {r['spec']:{width}s} {r['input']:>14s} {r['output']:>14s} "
              f"{r['params']:>10,d} {r['macs'] / 1e6:>9.2f}")
    print(f"total: {params:,} params ({params / 1e6:.2f} M), {macs / 1e6:.1f} M MACs "
          f"at {arch.resolution}x{arch.resolution}, {len(arch.blocks)} blocks")
    return 0
