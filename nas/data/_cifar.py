"""Reader for the CIFAR-10 "python version" batches (``cifar-10-batches-py``)."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ._types import DatasetFormatError, DatasetNotFoundError

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_HINT",
    "find_cifar10_dir",
    "load_cifar10_split",
    "read_cifar10_class_names",
    "read_cifar_batch",
]

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR10_HINT = (
    "download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html "
    "on a machine with network, extract it (tar xzf) and pass the resulting "
    "cifar-10-batches-py directory (or its parent) as root= or place it at "
    "$HWNAS_DATA_DIR/cifar-10-batches-py"
)
TRAIN_BATCHES: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES: tuple[str, ...] = ("test_batch",)
_SUBDIR = "cifar-10-batches-py"

# Only what numpy arrays, lists, strings and bytes need: a dataset file must not run code.
_SAFE_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.numeric", "_frombuffer"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def _load_pickle(path: Path) -> dict[Any, Any]:
    try:
        obj = _SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise DatasetFormatError(path, f"not a valid CIFAR pickle ({e})") from e
    if not isinstance(obj, dict):
        raise DatasetFormatError(path, f"expected a pickled dict, got {type(obj).__name__}")
    return obj


def _get(d: dict[Any, Any], key: str) -> Any:
    if key.encode() in d:
        return d[key.encode()]
    return d.get(key)


def read_cifar_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file into uint8 ``(N, 3, 32, 32)`` images and int64 ``(N,)`` labels."""
    path = Path(path)
    d = _load_pickle(path)
    data, labels = _get(d, "data"), _get(d, "labels")
    if data is None or labels is None:
        raise DatasetFormatError(path, "missing 'data' or 'labels' entry")
    data = np.asarray(data)
    labels = np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetFormatError(path, f"'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetFormatError(
            path, f"'labels' must be {data.shape[0]} integers, got {labels.dtype} {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)):
        raise DatasetFormatError(path, f"labels outside [0, 10): [{labels.min()}, {labels.max()}]")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _is_cifar_dir(directory: Path) -> bool:
    return (directory / "data_batch_1").is_file() or (directory / "test_batch").is_file()


def find_cifar10_dir(root: str | os.PathLike[str]) -> Path | None:
    """``root`` if it holds the batches, else ``root/cifar-10-batches-py`` if that does."""
    root = Path(root)
    for d in (root, root / _SUBDIR):
        if _is_cifar_dir(d):
            return d
    return None


def load_cifar10_split(directory: str | os.PathLike[str], split: str) -> tuple[np.ndarray, np.ndarray]:
    """Load ``split`` (``"train"``: data_batch_1..5, ``"test"``: test_batch) from ``directory``."""
    directory = Path(directory)
    names = TRAIN_BATCHES if split == "train" else TEST_BATCHES
    images, labels = [], []
    for name in names:
        p = directory / name
        if not p.is_file():
            raise DatasetNotFoundError(f"CIFAR-10 file {p} not found; {CIFAR10_HINT}", p)
        x, y = read_cifar_batch(p)
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def read_cifar10_class_names(directory: str | os.PathLike[str]) -> tuple[str, ...]:
    """Class names from ``batches.meta`` if present and sane, else the standard ten."""
    p = Path(directory) / "batches.meta"
    if p.is_file():
        names = _get(_load_pickle(p), "label_names")
        if isinstance(names, (list, tuple)) and len(names) == 10:
            return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return CIFAR10_CLASSES
