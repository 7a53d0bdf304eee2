"""Regenerate the Fashion-MNIST subset shipped in ``nas/data/fashion_mnist_tiny``.

Takes, from the full IDX files, the first ``n_train_per_class`` training and
``n_test_per_class`` test images of each class (in file order, so the result is fully
determined by the source files) and writes them, in their original relative order, as
gzipped IDX files with the standard names. gzip output uses mtime 0 and no file name, so
the bytes are reproducible.

Usage::

    python -m nas.data._make_tiny [SRC_DIR] [DST_DIR]

SRC_DIR defaults to ``/usr/share/datasets/fashion-mnist`` (Debian package
``dataset-fashion-mnist``), DST_DIR to the package's ``fashion_mnist_tiny`` directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from ._idx import IDX_FILES, write_idx
from ._loader import TINY_DIR, load_official

__all__ = ["N_TEST_PER_CLASS", "N_TRAIN_PER_CLASS", "make_tiny"]

# 2500 train + 800 test images: ~1.44 MB of gzipped IDX (the budget is 1.5 MB).
N_TRAIN_PER_CLASS = 250
N_TEST_PER_CLASS = 80
DEFAULT_SRC = Path("/usr/share/datasets/fashion-mnist")


def _first_per_class(labels: np.ndarray, k: int, num_classes: int) -> np.ndarray:
    parts = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)[:k]
        if len(idx) < k:
            raise ValueError(f"class {c} has only {len(idx)} samples, need {k}")
        parts.append(idx)
    return np.sort(np.concatenate(parts))


def make_tiny(
    src: str | os.PathLike[str] = DEFAULT_SRC,
    dst: str | os.PathLike[str] = TINY_DIR,
    *,
    n_train_per_class: int = N_TRAIN_PER_CLASS,
    n_test_per_class: int = N_TEST_PER_CLASS,
) -> list[Path]:
    """Write the class-balanced subset of the IDX dataset in ``src`` to ``dst``; return the files."""
    train, test = load_official("fashion_mnist", src)
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for split, ds, k in (("train", train, n_train_per_class), ("test", test, n_test_per_class)):
        idx = _first_per_class(ds.labels, k, ds.num_classes)
        img_stem, lbl_stem = IDX_FILES[split]
        for stem, arr in ((img_stem, ds.images[idx, 0]), (lbl_stem, ds.labels[idx].astype(np.uint8))):
            path = dst / f"{stem}.gz"
            write_idx(path, arr)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 2:
        sys.stderr.write(__doc__ or "")
        return 2
    src = Path(args[0]) if args else DEFAULT_SRC
    dst = Path(args[1]) if len(args) > 1 else TINY_DIR
    for p in make_tiny(src, dst):
        sys.stdout.write(f"{p} {p.stat().st_size} bytes\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
