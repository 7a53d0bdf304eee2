"""``nas space list|show|sample|preset``."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from nas.cli._common import add_alias, add_count, add_shape_args, load_space_args, shape_overrides


def register(sub: argparse._SubParsersAction) -> None:
    space = sub.add_parser("space", help="inspect and sample search spaces")
    cmds = space.add_subparsers(dest="space_command", required=True, metavar="SUBCOMMAND")

    p = cmds.add_parser("list", help="built-in spaces and presets")
    p.set_defaults(func=_list)

    p = cmds.add_parser("show", help="a space's choices, size and presets")
    p.add_argument("space", help="built-in name or path to a YAML file")
    add_shape_args(p)
    p.set_defaults(func=_show)

    p = cmds.add_parser("sample", help="random archs as JSON lines")
    p.add_argument("space", help="built-in name or path to a YAML file")
    add_count(p, 1, "number of archs")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--unique", action="store_true", help="resample until N distinct archs")
    add_shape_args(p)
    p.set_defaults(func=_sample)

    p = cmds.add_parser("validate", help="check that an arch JSON file is a point of a space")
    p.add_argument("space", help="built-in name or path to a YAML file")
    p.add_argument("arch", help="arch JSON file")
    add_shape_args(p)
    p.set_defaults(func=_validate)

    p = cmds.add_parser("preset", help="a named arch (e.g. mnasnet_b1) as JSON, at its declared resolution "
                                       "(max or min) of the space's resolutions")
    p.add_argument("name", help="preset name (see `nas space list`)")
    add_shape_args(p, "input resolutions of the preset's space (one value: the preset at that resolution)")
    add_alias(p, "--resolution", "--resolutions", convert=lambda r: [r], nargs=None)
    p.set_defaults(func=_preset)


def _list(args: argparse.Namespace) -> int:
    from nas import list_spaces, load_space

    for name in list_spaces():
        space = load_space(name)
        print(f"{name:10s} {space.description}")
        for preset in space.preset_names:
            print(f"  preset {preset:18s} {space.preset_description(preset)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    space = load_space_args(args.space, args)
    print(f"{space.name}: {space.description}")
    print(f"  classes {space.num_classes}, input channels {space.in_channels}, "
          f"resolutions {list(space.resolutions)}, width_mult {space.width_mult}")
    print(f"  size {space.size():,} archs ({space.size():.3e}); {len(space.dims)} named choices")
    print(f"  stem {space.stem.short()} {space.stem.act}; head {space.head}")
    for i, st in enumerate(space.stages):
        fixed = " ".join(f"{k}={v}" for k, v in st.fixed.items())
        choices = " ".join(f"{k}{'[layer]' if k in st.per_layer else ''}={list(v)}" for k, v in st.choices.items())
        print(f"  stage {i}: stride {st.stride} act {st.act} | fixed: {fixed or '-'} | choices: {choices or '-'}")
    for preset in space.preset_names:
        print(f"  preset {preset}: {space.preset_description(preset)}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from nas._errors import HwnasError

    if args.n < 1:
        raise HwnasError(f"-n must be at least 1, got {args.n}")
    space = load_space_args(args.space, args)
    rng = np.random.default_rng(args.seed)
    seen = set()
    tries = 0
    while len(seen) < args.n if args.unique else tries < args.n:
        arch = space.sample(rng)
        tries += 1
        if args.unique:
            if arch in seen:
                if tries > 100 * args.n:
                    raise HwnasError(f"space {space.name!r} has fewer than {args.n} distinct archs")
                continue
            seen.add(arch)
        sys.stdout.write(arch.to_json() + "\n")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from nas.cli._model import read_arch

    space = load_space_args(args.space, args)
    arch = read_arch(args.arch)
    space.validate(arch)
    print(f"{args.arch}: in {space.name} ({arch.short()})")
    return 0


def _preset(args: argparse.Namespace) -> int:
    from nas import load_preset

    _, arch = load_preset(args.name, **shape_overrides(args))
    print(arch.to_json(indent=2))
    return 0
