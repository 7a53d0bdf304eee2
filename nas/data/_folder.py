"""Your own images: a folder of class folders (read with Pillow) or an ``.npz`` of arrays.

Layouts (``path`` is ``data.root`` / ``root=`` of ``load_dataset("folder", ...)``):

* ``path/<class>/*.png|jpg|jpeg`` (subfolders of a class folder are read too); class names are
  the folder names, sorted; labels follow that order.
* ``path/train/<class>/...`` plus optional ``path/val/<class>/...`` and ``path/test/<class>/...``
  (when ``path`` holds only ``train``, ``val`` and ``test`` folders): a given ``val`` is used as is
  instead of a seeded split of ``train``.
* ``path.npz`` with ``x_train`` (uint8 ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``, C in
  {1, 3}; floats in [0, 1] are scaled) and ``y_train`` (integer labels ``(N,)``), optionally
  ``x_val``/``y_val``, ``x_test``/``y_test`` and ``class_names`` (strings; default ``"0"``, ``"1"``...).

Every image is converted to ``channels`` (1: grayscale, 3: RGB; None: RGB if any image has
colour, else grayscale) and, when ``image_size`` is given, resized to it (bilinear, antialiased);
without ``image_size`` all images must share one size.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._types import DatasetFormatError, DatasetNotFoundError

__all__ = ["IMAGE_SUFFIXES", "NPZ_KEYS", "OwnData", "is_own_data", "read_image", "read_own_data"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
NPZ_KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "class_names")
SPLITS = ("train", "val", "test")
LAYOUT = ("<root>/<class>/*.png|jpg|jpeg (one folder per class), <root>/train/<class>/... "
          "(+ optional val/, test/), or an .npz with x_train, y_train (+ optional x_val/y_val, "
          "x_test/y_test, class_names)")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")

Part = tuple[np.ndarray, np.ndarray]  # uint8 (N, C, H, W) images, int64 (N,) labels


@dataclass(frozen=True)
class OwnData:
    """The arrays of an own dataset; ``val``/``test`` are None when the source has none."""

    class_names: tuple[str, ...]
    train: Part
    val: Part | None
    test: Part | None


def _hw(image_size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if int(h) < 1 or int(w) < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    return int(h), int(w)


def _check_channels(channels: int | None) -> None:
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 (grayscale), 3 (RGB) or None (inferred), got {channels}")


def read_image(path: str | os.PathLike[str], channels: int | None = None,
               image_size: int | tuple[int, int] | None = None) -> np.ndarray:
    """One image file as uint8 ``(C, H, W)``: C is ``channels`` (None: 1 for grayscale files,
    3 otherwise; alpha is dropped), resized to ``image_size`` ``(H, W)`` or int when given.

    Raises:
        DatasetFormatError: naming the file when Pillow cannot read it.
    """
    from PIL import Image

    _check_channels(channels)
    size = _hw(image_size)
    try:
        with Image.open(path) as img:
            img.load()
            gray = img.mode in _GRAY_MODES
            if img.mode.startswith("I"):  # 16/32-bit grayscale: scale 16-bit values to 8 bits
                a = np.asarray(img, dtype=np.float64)
                img = Image.fromarray(np.clip(np.rint(a / 257 if a.max() > 255 else a), 0, 255).astype(np.uint8))
            return _chw(img, 1 if (channels == 1 or (channels is None and gray)) else 3, size)
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError... on broken files
        raise DatasetFormatError(path, f"unreadable image ({type(err).__name__}: {err})") from None


def _chw(img: Any, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """A PIL image as uint8 (C, H, W), converted to L or RGB and resized (bilinear) to ``size``."""
    from PIL import Image

    img = img.convert("L" if channels == 1 else "RGB")
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    a = np.asarray(img, dtype=np.uint8)
    return a[None] if a.ndim == 2 else np.ascontiguousarray(a.transpose(2, 0, 1))


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    files = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]
    images = sorted(p for p in files if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        others = f" (found {len(files)} other file(s), e.g. {files[0].name})" if files else ""
        raise DatasetFormatError(folder, f"class folder has no images ({', '.join(IMAGE_SUFFIXES)}){others}")
    return images


def _split_layout(path: Path) -> dict[str, Path]:
    """``{"train": path}``, or the split folders when ``path`` holds only train/val/test."""
    dirs = {d.name: d for d in _subdirs(path)}
    if "train" in dirs and set(dirs) <= set(SPLITS):
        return dirs
    return {"train": path}


def is_own_data(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` looks like own data: an ``.npz`` file or a directory with subfolders."""
    p = Path(path)
    if p.is_file():
        return p.suffix.lower() == ".npz"
    return p.is_dir() and bool(_subdirs(p))


def _wxh(a: np.ndarray) -> str:
    return f"{a.shape[-1]}x{a.shape[-2]}"


def _stack(arrays: list[np.ndarray], files: list[Path], channels: int | None) -> np.ndarray:
    """One uint8 (N, C, H, W) array; grayscale images repeated to RGB when others have colour."""
    c = channels or max(a.shape[0] for a in arrays)
    shapes = {a.shape[1:] for a in arrays}
    if len(shapes) > 1:
        first = arrays[0].shape[1:]
        odd = next(i for i, a in enumerate(arrays) if a.shape[1:] != first)
        raise DatasetFormatError(files[odd], f"image size {_wxh(arrays[odd])} differs from {_wxh(arrays[0])} "
                                             f"of {files[0]}; set image_size (data.image_size) to resize all images")
    out = np.empty((len(arrays), c, *arrays[0].shape[1:]), np.uint8)
    for i, a in enumerate(arrays):
        out[i] = a  # (1, H, W) broadcasts to (3, H, W)
    return out


def _read_folder(path: Path, channels: int | None, image_size: int | tuple[int, int] | None) -> OwnData:
    layout = _split_layout(path)
    classes = _subdirs(layout["train"])
    if not classes:
        loose = [p.name for p in layout["train"].iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        why = f"images lie directly in it (e.g. {loose[0]}), put them in one folder per class" if loose else "empty"
        raise DatasetFormatError(layout["train"], f"no class folders ({why}); expected {LAYOUT}")
    if len(classes) < 2:
        raise DatasetFormatError(layout["train"], f"only one class folder ({classes[0].name}); need at least 2")
    names = tuple(d.name for d in classes)
    parts: dict[str, tuple[list[np.ndarray], list[int], list[Path]]] = {}
    for split, root in layout.items():
        dirs = classes if split == "train" else _subdirs(root)
        unknown = [d.name for d in dirs if d.name not in names]
        if unknown:
            raise DatasetFormatError(root, f"class folder(s) {unknown} not among the train classes {list(names)}")
        arrays, labels, files = [], [], []
        for d in dirs:
            for f in _images_in(d):
                arrays.append(read_image(f, channels, image_size))
                labels.append(names.index(d.name))
                files.append(f)
        if arrays:
            parts[split] = (arrays, labels, files)
    if channels is None:  # RGB if any image of any split has colour
        channels = max(a.shape[0] for arrays, _, _ in parts.values() for a in arrays)
    stacked = {s: (_stack(a, f, channels), np.asarray(y, np.int64)) for s, (a, y, f) in parts.items()}
    return _own(path, names, stacked)


def _own(path: Path, names: tuple[str, ...], parts: dict[str, Part]) -> OwnData:
    train = parts["train"]
    for split, (x, _) in parts.items():
        if x.shape[1:] != train[0].shape[1:]:
            raise DatasetFormatError(path, f"{split} images are {x.shape[1:]} (C, H, W) but train images "
                                           f"{train[0].shape[1:]}; set image_size to resize all images")
    return OwnData(names, train, parts.get("val"), parts.get("test"))


def _npz_images(path: Path, key: str, x: np.ndarray) -> np.ndarray:
    """``x`` as uint8 (N, C, H, W)."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif not (x.ndim == 4 and x.shape[1] in (1, 3)):
        raise DatasetFormatError(path, f"{key} has shape {x.shape}; expected (N, H, W), (N, H, W, C) or "
                                       "(N, C, H, W) with C 1 or 3")
    if np.issubdtype(x.dtype, np.floating):
        if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1 or np.isnan(x).any()):
            raise DatasetFormatError(path, f"{key} is float but not in [0, 1]")
        x = np.rint(x * 255)
    elif not np.issubdtype(x.dtype, np.integer) or (x.size and (x.min() < 0 or x.max() > 255)):
        raise DatasetFormatError(path, f"{key} must hold uint8 pixels (0..255) or floats in [0, 1], got {x.dtype}")
    return np.ascontiguousarray(x.astype(np.uint8))


def _convert(x: np.ndarray, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """Images (N, C, H, W) converted to ``channels`` and resized to ``size`` with Pillow."""
    from PIL import Image

    if x.shape[1] == channels and (size is None or x.shape[2:] == size):
        return x
    out = np.empty((len(x), channels, *(size or x.shape[2:])), np.uint8)
    for i, a in enumerate(x):
        out[i] = _chw(Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)), channels, size)
    return out


def _read_npz(path: Path, channels: int | None, image_size: int | tuple[int, int] | None) -> OwnData:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        why = f"not a readable .npz ({type(err).__name__}: {err}); expected {LAYOUT}"
        raise DatasetFormatError(path, why) from None
    unknown = sorted(set(arrays) - set(NPZ_KEYS))
    if unknown:
        raise DatasetFormatError(path, f"unknown key(s) {unknown}; keys: {', '.join(NPZ_KEYS)}")
    parts: dict[str, Part] = {}
    for split in SPLITS:
        xk, yk = f"x_{split}", f"y_{split}"
        if (xk in arrays) != (yk in arrays) or (split == "train" and xk not in arrays):
            have = [k for k in (xk, yk) if k in arrays]
            raise DatasetFormatError(path, f"{xk} and {yk} go together; found {have or 'neither'} "
                                           f"(keys: {sorted(arrays)})")
        if xk not in arrays:
            continue
        x, y = _npz_images(path, xk, arrays[xk]), arrays[yk]
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise DatasetFormatError(path, f"{yk} must be {len(x)} integer labels (one per image of {xk}), "
                                           f"got {y.dtype} {y.shape}")
        parts[split] = (x, y.astype(np.int64))
    k = 1 + max((int(y.max()) for _, y in parts.values() if y.size), default=-1)
    names = tuple(str(n) for n in arrays["class_names"]) if "class_names" in arrays else tuple(map(str, range(k)))
    for split, (_, y) in parts.items():
        if y.size and (y.min() < 0 or y.max() >= len(names)):
            raise DatasetFormatError(path, f"y_{split} has labels in [{y.min()}, {y.max()}] but there are "
                                           f"{len(names)} class_names")
    if len(parts["train"][1]) == 0:
        raise DatasetFormatError(path, "x_train holds no images")
    c = channels or parts["train"][0].shape[1]
    size = _hw(image_size)
    return _own(path, names, {s: (_convert(x, c, size), y) for s, (x, y) in parts.items()})


def read_own_data(path: str | os.PathLike[str], *, channels: int | None = None,
                  image_size: int | tuple[int, int] | None = None) -> OwnData:
    """Read a class-folder tree or an ``.npz`` (see the module doc) into uint8 arrays.

    Raises:
        DatasetNotFoundError: ``path`` does not exist.
        DatasetFormatError: naming the bad folder, file or key (empty folder, class folder
            without images, unreadable image, mismatched npz keys, mixed sizes without image_size).
    """
    _check_channels(channels)
    _hw(image_size)
    p = Path(path)
    if p.is_dir():
        return _read_folder(p, channels, image_size)
    if p.is_file():
        if p.suffix.lower() != ".npz":
            raise DatasetFormatError(p, f"not a folder or an .npz file; expected {LAYOUT}")
        return _read_npz(p, channels, image_size)
    raise DatasetNotFoundError(f"own data {p} does not exist; expected {LAYOUT}", p)
