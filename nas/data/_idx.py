"""Reader/writer for the IDX format used by MNIST and Fashion-MNIST."""

from __future__ import annotations

import gzip
import io
import os
import zlib
from pathlib import Path

import numpy as np

from ._types import DatasetFormatError, DatasetNotFoundError

__all__ = ["IDX_FILES", "find_idx_file", "has_idx_files", "load_idx_split", "read_idx", "write_idx"]

# IDX type byte -> big-endian numpy dtype
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"

# split -> (images stem, labels stem); files may also end in ".gz".
IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_bytes(path: Path) -> bytes:
    """File contents, transparently gunzipped (detected by magic bytes, not suffix)."""
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        raise DatasetFormatError(path, f"corrupt or truncated gzip stream ({e})") from e


def read_idx(path: str | os.PathLike[str], ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a numpy array in native byte order.

    Validates the magic number (two zero bytes, type byte, rank), the optional expected
    rank ``ndim``, and that the payload size matches the header exactly.

    Raises:
        DatasetFormatError: naming ``path`` if the file is corrupt, truncated or too long.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DatasetFormatError(path, f"truncated IDX header ({len(data)} bytes)")
    zero0, zero1, type_code, rank = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0 or type_code not in _IDX_DTYPES:
        raise DatasetFormatError(path, f"bad IDX magic number 0x{data[:4].hex()}")
    if ndim is not None and rank != ndim:
        raise DatasetFormatError(
            path, f"IDX rank is {rank}, expected {ndim} (magic 0x{data[:4].hex()})"
        )
    header = 4 + 4 * rank
    if len(data) < header:
        raise DatasetFormatError(path, f"truncated IDX header ({len(data)} < {header} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=rank, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise DatasetFormatError(
            path, f"IDX payload {what}: header {shape} needs {expected} bytes, file has {got}"
        )
    arr = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file; gzip it (deterministically, mtime 0) if ``compress``
    is true or, when None, if ``path`` ends in ``.gz``."""
    path = Path(path)
    arr = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}
    dtype = arr.dtype.newbyteorder("=")
    if dtype not in codes:
        raise ValueError(f"dtype {arr.dtype} has no IDX type code")
    if arr.ndim > 255:
        raise ValueError("IDX supports at most 255 dimensions")
    header = bytes([0, 0, codes[dtype], arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    payload = header + np.ascontiguousarray(arr, dtype=_IDX_DTYPES[codes[dtype]]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
            f.write(payload)
        payload = buf.getvalue()
    path.write_bytes(payload)


def find_idx_file(directory: Path, stem: str) -> Path | None:
    """``directory/stem`` or ``stem.gz`` (also the ``train-images.idx3-ubyte`` spelling)."""
    alt = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", alt, alt + ".gz"):
        p = directory / name
        if p.is_file():
            return p
    return None


def has_idx_files(directory: Path) -> bool:
    """Whether ``directory`` holds all four IDX files."""
    return all(
        find_idx_file(directory, stem) is not None for pair in IDX_FILES.values() for stem in pair
    )


def load_idx_split(
    directory: str | os.PathLike[str], split: str, *, num_classes: int | None = None, hint: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Load ``split`` (``"train"`` or ``"test"``) from an MNIST-style directory.

    Returns:
        ``(images, labels)``: uint8 ``(N, 1, H, W)`` and int64 ``(N,)``.
    """
    directory = Path(directory)
    img_stem, lbl_stem = IDX_FILES[split]
    paths = []
    for stem in (img_stem, lbl_stem):
        p = find_idx_file(directory, stem)
        if p is None:
            msg = f"{stem}[.gz] not found in {directory}"
            raise DatasetNotFoundError(f"{msg}; {hint}" if hint else msg, directory / stem)
        paths.append(p)
    img_path, lbl_path = paths
    images = read_idx(img_path, ndim=3)
    labels = read_idx(lbl_path, ndim=1)
    if images.dtype != np.uint8:
        raise DatasetFormatError(img_path, f"expected uint8 images, got {images.dtype}")
    if labels.shape[0] != images.shape[0]:
        raise DatasetFormatError(
            lbl_path, f"has {labels.shape[0]} labels but {img_path.name} has {images.shape[0]} images"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DatasetFormatError(lbl_path, f"expected integer labels, got {labels.dtype}")
    hi = num_classes if num_classes is not None else 256
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= hi):
        raise DatasetFormatError(
            lbl_path, f"labels outside [0, {hi}): [{int(labels.min())}, {int(labels.max())}]"
        )
    return images[:, None, :, :], labels.astype(np.int64)
