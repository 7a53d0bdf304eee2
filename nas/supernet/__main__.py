"""``python -m nas.supernet slim SRC DST``: the weights-only form of a supernet training checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.supernet._checkpoint import slim_checkpoint


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nas.supernet")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("slim", help="write the weights-only form of a checkpoint (what evaluation and "
                                    "extraction read; training cannot resume from it)")
    p.add_argument("src", help="a training checkpoint (runs/<run>/checkpoint.pt)")
    p.add_argument("dst", help="the weights-only file to write")
    args = ap.parse_args(argv)
    slim = slim_checkpoint(args.src, args.dst)
    print(f"wrote {args.dst} ({Path(args.dst).stat().st_size / 1e6:.1f} MB, step {slim['step']}, "
          f"{sum(t.numel() for t in slim['model'].values()):,} numbers)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
