"""Write a synthetic image folder (see `nas.data.make_image_folder`).

Usage::

    python -m nas.data._make_folder OUT_DIR [--classes 10] [--per-class 120] [--size 36] [--channels 3] [--seed 0]
"""

from __future__ import annotations

import argparse

from ._synthetic import SHAPES, make_image_folder

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nas.data._make_folder",
                                description="Write a synthetic image folder: root/<class>/NNNN.png.")
    p.add_argument("out", help="folder to write root/<class>/NNNN.png into")
    p.add_argument("--classes", type=int, default=10, help=f"number of classes (2..{len(SHAPES)})")
    p.add_argument("--per-class", type=int, default=120, help="images per class")
    p.add_argument("--size", type=int, default=36, help="image width and height in pixels")
    p.add_argument("--channels", type=int, default=3, choices=(1, 3), help="1: grayscale, 3: RGB")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    args = p.parse_args(argv)
    root = make_image_folder(args.out, num_classes=args.classes, per_class=args.per_class, size=args.size,
                             channels=args.channels, seed=args.seed)
    print(f"wrote {args.classes * args.per_class} images of {args.classes} classes to {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
