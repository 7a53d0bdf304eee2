"""Fast in-memory batching: convert a whole split to one float tensor once, then slice."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ._types import DataSplits, ImageDataset

__all__ = ["BatchLoader", "Loaders", "make_loaders", "to_tensors"]

_CHUNK = 4096  # images converted/resized at a time, bounds temporary memory


def _size(resolution: int | tuple[int, int] | None, h: int, w: int) -> tuple[int, int]:
    if resolution is None:
        return (h, w)
    if isinstance(resolution, int):
        resolution = (resolution, resolution)
    rh, rw = (int(r) for r in resolution)
    if rh <= 0 or rw <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    return (rh, rw)


def _make_generator(generator: torch.Generator | int | None) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    return torch.Generator().manual_seed(0 if generator is None else int(generator))


def to_tensors(
    dataset: ImageDataset,
    *,
    resolution: int | tuple[int, int] | None = None,
    normalize: bool = True,
    limit: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``limit`` samples as ``(x, y)``: float ``(N, C, H', W')`` and int64 ``(N,)``.

    Pixels are scaled to [0, 1], bilinearly resized to ``resolution`` (antialiased when
    shrinking) and, if ``normalize``, standardized with the dataset's per-channel mean/std.
    """
    images = dataset.images[:limit] if limit is not None else dataset.images
    labels = dataset.labels[:limit] if limit is not None else dataset.labels
    n, c, h, w = images.shape
    oh, ow = _size(resolution, h, w)
    x = torch.empty((n, c, oh, ow), dtype=dtype, device=device)
    # x -> x * scale + shift folds the /255 and the standardization into two passes.
    mean = np.asarray(dataset.mean if normalize else (0.0,) * c, dtype=np.float64)
    std = np.asarray(dataset.std if normalize else (1.0,) * c, dtype=np.float64)
    scale = torch.tensor(1.0 / (255.0 * std), dtype=dtype, device=device).view(1, c, 1, 1)
    shift = torch.tensor(-mean / std, dtype=dtype, device=device).view(1, c, 1, 1)
    resize = (oh, ow) != (h, w)
    for s in range(0, n, _CHUNK):
        out = x[s : s + _CHUNK]
        chunk = torch.from_numpy(np.array(images[s : s + _CHUNK])).to(device)
        if resize:
            chunk = F.interpolate(
                chunk.to(dtype), size=(oh, ow), mode="bilinear", align_corners=False,
                antialias=oh < h or ow < w,
            )  # fmt: skip
        out.copy_(chunk)
        out.mul_(scale).add_(shift)
    y = torch.tensor(np.asarray(labels, dtype=np.int64), device=device)
    return x, y


class BatchLoader:
    """Iterate ``(x, y)`` batches of a dataset held on ``device`` as one float tensor.

    Much faster than a per-item ``Dataset``/``DataLoader`` for small images. All
    randomness (shuffle order, crop offsets, flips) comes from ``generator`` (a
    ``torch.Generator`` or an int seed; None means seed 0, so loaders are reproducible by
    default). Each pass over the loader advances the generator, so epochs differ while
    the whole sequence is fixed by the seed.

    Args:
        dataset: the split to iterate.
        batch_size: samples per batch (the last one may be smaller unless ``drop_last``).
        shuffle: visit samples in a fresh random order each epoch.
        augment: random crop with ``crop_padding`` zero-pixel padding (pad value is a
            black pixel after normalization) and, if ``hflip``, random horizontal flips.
        resolution: resize images once, bilinearly, to ``int`` or ``(H, W)``.
        normalize: standardize with the dataset's mean/std.
        limit: use only the first ``limit`` samples.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        batch_size: int = 128,
        *,
        shuffle: bool = False,
        augment: bool = False,
        crop_padding: int = 4,
        hflip: bool = True,
        resolution: int | tuple[int, int] | None = None,
        normalize: bool = True,
        limit: int | None = None,
        drop_last: bool = False,
        generator: torch.Generator | int | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.augment = augment
        self.crop_padding = int(crop_padding)
        self.hflip = hflip
        self.drop_last = drop_last
        self.generator = _make_generator(generator)
        self.device = torch.device(device)
        self.images, self.labels = to_tensors(
            dataset, resolution=resolution, normalize=normalize, limit=limit,
            device=self.device, dtype=dtype,
        )  # fmt: skip
        c = dataset.channels
        if normalize:
            fill = [(0.0 - m) / s for m, s in zip(dataset.mean, dataset.std)]
        else:
            fill = [0.0] * c
        self._fill = torch.tensor(fill, dtype=dtype, device=self.device).view(1, c, 1, 1)

    @property
    def num_samples(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the batches produced."""
        _, c, h, w = self.images.shape
        return (int(c), int(h), int(w))

    def __len__(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, bs = self.num_samples, self.batch_size
        order = torch.randperm(n, generator=self.generator).to(self.device) if self.shuffle else None
        stop = (n // bs) * bs if self.drop_last else n
        for s in range(0, stop, bs):
            if order is None:
                x, y = self.images[s : s + bs], self.labels[s : s + bs]
            else:
                idx = order[s : s + bs]
                x, y = self.images.index_select(0, idx), self.labels.index_select(0, idx)
            if self.augment:
                x = self._augment(x)
            yield x, y

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample random crop (with padding) and horizontal flip, as one gather."""
        b, c, h, w = x.shape
        p = self.crop_padding
        if p == 0 and not self.hflip:
            return x
        if p > 0:
            padded = self._fill.expand(b, c, h + 2 * p, w + 2 * p).clone()
            padded[:, :, p : p + h, p : p + w] = x
            oy, ox = torch.randint(0, 2 * p + 1, (2, b), generator=self.generator).to(self.device)
        else:
            padded = x
            oy = ox = torch.zeros(b, dtype=torch.long, device=self.device)
        cols = torch.arange(w, device=self.device).expand(b, w)
        if self.hflip:
            flip = (torch.rand(b, generator=self.generator) < 0.5).to(self.device)
            cols = torch.where(flip[:, None], (w - 1) - cols, cols)
        rows = oy[:, None] + torch.arange(h, device=self.device)  # (b, h)
        cols = ox[:, None] + cols  # (b, w)
        bi = torch.arange(b, device=self.device).view(b, 1, 1, 1)
        ci = torch.arange(c, device=self.device).view(1, c, 1, 1)
        return padded[bi, ci, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]


class Loaders(NamedTuple):
    """Batch iterators for the three splits."""

    train: BatchLoader
    val: BatchLoader
    test: BatchLoader


def make_loaders(
    splits: DataSplits,
    batch_size: int = 128,
    *,
    eval_batch_size: int | None = None,
    resolution: int | tuple[int, int] | None = None,
    augment: bool = False,
    crop_padding: int = 4,
    hflip: bool = True,
    limit: int | None = None,
    drop_last: bool = False,
    generator: torch.Generator | int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Loaders:
    """Build :class:`BatchLoader` s for ``splits``.

    Train is shuffled (and augmented if ``augment``) with ``generator``; val and test keep
    their order, are never augmented and use ``eval_batch_size`` (default ``batch_size``).
    ``limit`` keeps only the first ``limit`` samples of each split; ``drop_last`` applies to
    train only. Use ``hflip=False`` for digits (MNIST).
    """
    ebs = eval_batch_size or batch_size

    def make(ds: ImageDataset, bs: int, train: bool) -> BatchLoader:
        return BatchLoader(
            ds, bs, shuffle=train, augment=augment and train, crop_padding=crop_padding,
            hflip=hflip, resolution=resolution, limit=limit, drop_last=drop_last and train,
            generator=generator if train else 0, device=device, dtype=dtype,
        )  # fmt: skip

    return Loaders(make(splits.train, batch_size, True), make(splits.val, ebs, False),
                   make(splits.test, ebs, False))  # fmt: skip
