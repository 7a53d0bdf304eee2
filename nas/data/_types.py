"""Containers and errors shared by the data loaders."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from nas._errors import HwnasError

__all__ = [
    "DataSplits",
    "DatasetError",
    "DatasetFormatError",
    "DatasetNameError",
    "DatasetNotFoundError",
    "ImageDataset",
    "channel_stats",
]


class DatasetError(HwnasError):
    """Base class for data-module errors."""


class DatasetNameError(DatasetError, ValueError):
    """An unknown dataset name (or a name/path mix-up)."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset files are not where we looked.

    ``str(err)`` is one line naming the path(s) searched and how to get the data.
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)

    def __str__(self) -> str:  # FileNotFoundError would otherwise format errno fields
        return str(self.args[0])

    def __reduce__(self) -> tuple[type[DatasetNotFoundError], tuple[str, str | None]]:
        return (type(self), (str(self.args[0]), self.path))


class DatasetFormatError(DatasetError, ValueError):
    """A dataset file exists but is corrupt, truncated or not in the expected format."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type[DatasetFormatError], tuple[str, str]]:
        return (type(self), (self.path, self.reason))


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean/std of uint8 ``(N, C, H, W)`` images on the [0, 1] scale.

    Uses a 256-bin histogram per channel, built in chunks, so memory stays small.
    """
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 (N, C, H, W) images, got {images.dtype} {images.shape}")
    if images.shape[0] == 0:
        raise ValueError("cannot compute statistics of an empty image set")
    values = np.arange(256, dtype=np.float64) / 255.0
    means: list[float] = []
    stds: list[float] = []
    for c in range(images.shape[1]):
        hist = np.zeros(256, dtype=np.float64)
        step = max(1, (1 << 20) // max(1, images[0, c].size))
        for s in range(0, images.shape[0], step):
            hist += np.bincount(images[s : s + step, c].reshape(-1), minlength=256)
        n = hist.sum()
        mean = float(hist @ values / n)
        var = float(hist @ (values - mean) ** 2 / n)
        means.append(mean)
        stds.append(max(var, 0.0) ** 0.5)
    return tuple(means), tuple(stds)


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """An in-memory image-classification split.

    Attributes:
        images: uint8 array ``(N, C, H, W)`` (read-only).
        labels: int64 array ``(N,)`` with values in ``[0, num_classes)`` (read-only).
        class_names: one name per class index.
        mean, std: per-channel normalization statistics on the [0, 1] scale
            (for :func:`nas.data.load_dataset` these come from the *train* split and
            are shared by train/val/test).
        name: dataset name, e.g. ``"fashion_mnist"``.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str = ""

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        labels = np.asarray(self.labels)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {images.shape}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, got {labels.dtype}")
        labels = labels.astype(np.int64, copy=False)
        k = len(self.class_names)
        if labels.size and (labels.min() < 0 or labels.max() >= k):
            raise ValueError(f"labels must lie in [0, {k}), got [{labels.min()}, {labels.max()}]")
        c = images.shape[1]
        if len(self.mean) != c or len(self.std) != c:
            raise ValueError(f"mean/std need {c} channel(s), got {len(self.mean)}/{len(self.std)}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")
        if images.flags.writeable:
            images = images.view()
            images.flags.writeable = False
        if labels.flags.writeable:
            labels = labels.view()
            labels.flags.writeable = False
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, n={len(self)}, shape={self.image_shape}, "
            f"classes={self.num_classes})"
        )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        _, c, h, w = self.images.shape
        return (int(c), int(h), int(w))

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def class_counts(self) -> np.ndarray:
        """Number of samples per class, shape ``(num_classes,)``."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def subset(self, indices: np.ndarray | list[int] | slice) -> ImageDataset:
        """A new dataset with the selected samples (same classes and statistics)."""
        if not isinstance(indices, slice):
            indices = np.asarray(indices, dtype=np.int64)
        return ImageDataset(
            images=self.images[indices],
            labels=self.labels[indices],
            class_names=self.class_names,
            mean=self.mean,
            std=self.std,
            name=self.name,
        )

    def take(self, n: int | None) -> ImageDataset:
        """The first ``n`` samples (all of them when ``n`` is None)."""
        if n is None:
            return self
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return self.subset(slice(0, n))

    def with_stats(self, mean: tuple[float, ...], std: tuple[float, ...]) -> ImageDataset:
        """The same samples with other normalization statistics."""
        return ImageDataset(self.images, self.labels, self.class_names, mean, std, self.name)


@dataclass(frozen=True, eq=False)
class DataSplits:
    """Train / validation / official-test splits of one dataset.

    ``val`` is carved out of the official training set by :func:`nas.data.split_train_val`;
    ``test`` is the official test set. All three share ``class_names``, ``mean`` and ``std``.
    """

    train: ImageDataset
    val: ImageDataset
    test: ImageDataset

    def __post_init__(self) -> None:
        ref = self.train
        for split_name, ds in (("val", self.val), ("test", self.test)):
            if ds.image_shape != ref.image_shape:
                raise ValueError(f"{split_name} image shape {ds.image_shape} != train {ref.image_shape}")
            if ds.class_names != ref.class_names:
                raise ValueError(f"{split_name} class names differ from train")

    def __repr__(self) -> str:
        return (
            f"DataSplits(name={self.name!r}, train={len(self.train)}, val={len(self.val)}, "
            f"test={len(self.test)}, shape={self.image_shape}, classes={self.num_classes})"
        )

    @property
    def name(self) -> str:
        return self.train.name

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return self.train.image_shape

    @property
    def mean(self) -> tuple[float, ...]:
        return self.train.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.train.std
