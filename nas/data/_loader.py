"""Dataset registry, root resolution, train/val split and the ``load_dataset`` entry point."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._cifar import CIFAR10_HINT, find_cifar10_dir, load_cifar10_split, read_cifar10_class_names
from ._folder import LAYOUT, OwnData, is_own_data, read_own_data
from ._idx import has_idx_files, load_idx_split
from ._types import DataSplits, DatasetNameError, DatasetNotFoundError, ImageDataset, channel_stats

__all__ = [
    "DATA_DIR_ENV",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "TINY_DIR",
    "available_datasets",
    "find_dataset_root",
    "load_dataset",
    "load_official",
    "split_indices",
    "split_train_val",
]

DATA_DIR_ENV = "HWNAS_DATA_DIR"
TINY_DIR = Path(__file__).resolve().parent / "fashion_mnist_tiny"

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
MNIST_CLASSES: tuple[str, ...] = tuple(str(i) for i in range(10))

_IDX_FILES_DESC = (
    "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
    "t10k-labels-idx1-ubyte (optionally .gz)"
)


@dataclass(frozen=True)
class _Spec:
    name: str
    fmt: str  # "idx", "cifar10" or "folder" (own images, see nas.data._folder)
    class_names: tuple[str, ...]
    subdirs: tuple[str, ...]  # looked up under root= and $HWNAS_DATA_DIR
    default_roots: tuple[str, ...]
    hint: str


_SPECS: dict[str, _Spec] = {
    s.name: s
    for s in (
        _Spec(
            "fashion_mnist",
            "idx",
            FASHION_MNIST_CLASSES,
            ("fashion-mnist", "fashion_mnist"),
            ("/usr/share/datasets/fashion-mnist",),
            "install it with `apt-get install dataset-fashion-mnist` (puts the files in "
            f"/usr/share/datasets/fashion-mnist) or pass a directory holding {_IDX_FILES_DESC} "
            f"as root= or place it at ${DATA_DIR_ENV}/fashion-mnist",
        ),
        _Spec(
            "mnist",
            "idx",
            MNIST_CLASSES,
            ("mnist",),
            ("/usr/share/datasets/mnist",),
            f"fetch the four MNIST IDX files ({_IDX_FILES_DESC}) on a machine with network "
            f"and pass their directory as root= or place it at ${DATA_DIR_ENV}/mnist",
        ),
        _Spec(
            "cifar10",
            "cifar10",
            (),  # read from batches.meta, falling back to the standard names
            ("cifar-10-batches-py", "cifar10", "cifar-10"),
            ("/usr/share/datasets/cifar-10-batches-py", "/usr/share/datasets/cifar10"),
            CIFAR10_HINT,
        ),
        _Spec(
            "fashion_mnist_tiny",
            "idx",
            FASHION_MNIST_CLASSES,
            (),
            (str(TINY_DIR),),
            "it ships with the package in nas/data/fashion_mnist_tiny; regenerate it with "
            "`python -m nas.data._make_tiny` from the full Fashion-MNIST files",
        ),
        _Spec("folder", "folder", (), (), (), f"give your images' folder or .npz as root= (data.root): {LAYOUT}"),
    )
}
_ALIASES = {
    "fashionmnist": "fashion_mnist",
    "fmnist": "fashion_mnist",
    "cifar_10": "cifar10",
}


def available_datasets() -> tuple[str, ...]:
    """Canonical dataset names accepted by :func:`load_dataset`."""
    return tuple(_SPECS)


def _canonical(name: str) -> str | None:
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    return key if key in _SPECS else None


def _holds(spec: _Spec, directory: Path) -> Path | None:
    """The directory with ``spec``'s files if ``directory`` (or a known subdir) has them."""
    if spec.fmt == "cifar10":
        return find_cifar10_dir(directory)
    if spec.fmt == "folder":
        return directory if is_own_data(directory) else None
    for d in (directory, *(directory / s for s in spec.subdirs)):
        if has_idx_files(d):
            return d
    return None


def find_dataset_root(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Directory holding dataset ``name``'s files.

    Search order: ``root`` (or a known subdirectory of it, e.g. ``cifar-10-batches-py``)
    if given, exclusively; otherwise ``$HWNAS_DATA_DIR/<subdir>`` (``fashion-mnist``,
    ``mnist``, ``cifar-10-batches-py``; several dirs may be joined with ``os.pathsep``),
    then the system defaults (``/usr/share/datasets/fashion-mnist``, ...). ``"folder"`` (own
    images) needs ``root``: a folder of class folders or an ``.npz``; a path to an ``.npz`` is
    also accepted as ``name``.

    Raises:
        DatasetNotFoundError: naming the paths searched and how to get the data.
        DatasetNameError: for an unknown name (a ValueError).
    """
    key = _canonical(name)
    if key is None and root is None and Path(name).suffix.lower() == ".npz" and Path(name).is_file():
        return Path(name)
    if key is None:
        raise DatasetNameError(f"unknown dataset {name!r}; known: {', '.join(available_datasets())}")
    spec = _SPECS[key]
    if spec.fmt == "folder" and root is None:
        raise DatasetNotFoundError(f"dataset 'folder' reads your own images: {spec.hint}")
    if root is not None:
        candidates = [Path(root)]
    else:
        candidates = []
        env = os.environ.get(DATA_DIR_ENV, "")
        for base in filter(None, env.split(os.pathsep)):
            candidates += [Path(base) / s for s in spec.subdirs]
        candidates += [Path(p) for p in spec.default_roots]
    for c in candidates:
        found = _holds(spec, c)
        if found is not None:
            return found
    if root is not None and (Path(root).is_dir() or (spec.fmt == "folder" and Path(root).exists())):
        # Let the format loader name the precise missing file.
        return Path(root)
    where = ", ".join(str(c) for c in candidates)
    raise DatasetNotFoundError(f"{key} not found (looked in: {where}); {spec.hint}", candidates[0])


def _resolve_path(
    path_like: str | os.PathLike[str], root: str | os.PathLike[str] | None
) -> tuple[_Spec, Path]:
    """Dataset spec and data directory for a directory given instead of a name."""
    if root is not None:
        raise DatasetNameError(
            f"pass a dataset name with root=, or a directory alone; got {path_like!r} and root={root!r}"
        )
    text = os.fspath(path_like)
    path = Path(path_like)
    if isinstance(path_like, str) and os.sep not in text and not path.exists():
        raise DatasetNameError(
            f"unknown dataset {text!r}; known: {', '.join(available_datasets())} (or pass a directory)"
        )
    expected = (f"expected {_IDX_FILES_DESC}, CIFAR-10 python batches (data_batch_1..5, test_batch) "
                f"or own images: {LAYOUT}")
    if path.is_file() and is_own_data(path):
        return _SPECS["folder"], path
    if not path.is_dir():
        raise DatasetNotFoundError(f"dataset directory {path} does not exist; {expected}", path)
    cifar_dir = find_cifar10_dir(path)
    if cifar_dir is not None:
        return _SPECS["cifar10"], cifar_dir
    if has_idx_files(path):
        return _SPECS["fashion_mnist" if "fashion" in text.lower() else "mnist"], path
    if is_own_data(path):
        return _SPECS["folder"], path
    raise DatasetNotFoundError(f"no dataset found in {path}: {expected}", path)


Size = int | tuple[int, int] | None


def _read(
    name_or_path: str | os.PathLike[str], root: str | os.PathLike[str] | None, image_size: Size, channels: int | None
) -> tuple[ImageDataset, ImageDataset | None, ImageDataset]:
    """``(train, given val or None, test)`` of a dataset, all with the train set's mean/std."""
    key = _canonical(name_or_path) if isinstance(name_or_path, str) else None
    if key is not None:
        spec = _SPECS[key]
        directory = find_dataset_root(key, root)
    else:
        spec, directory = _resolve_path(name_or_path, root)
    if spec.fmt != "folder" and (image_size is not None or channels is not None):
        raise DatasetNameError(f"image_size and channels apply to own images (dataset 'folder'), not {spec.name!r}")

    val = None
    if spec.fmt == "folder":
        own: OwnData = read_own_data(directory, channels=channels, image_size=image_size)
        class_names, (xtr, ytr), val = own.class_names, own.train, own.val
        xte, yte = own.test or (np.zeros((0, *xtr.shape[1:]), np.uint8), np.zeros(0, np.int64))
    elif spec.fmt == "cifar10":
        class_names = read_cifar10_class_names(directory)
        (xtr, ytr), (xte, yte) = (load_cifar10_split(directory, s) for s in ("train", "test"))
    else:
        class_names = spec.class_names
        (xtr, ytr), (xte, yte) = (
            load_idx_split(directory, s, num_classes=len(class_names), hint=spec.hint)
            for s in ("train", "test")
        )
    mean, std = channel_stats(xtr)
    train = ImageDataset(xtr, ytr, class_names, mean, std, spec.name)
    test = ImageDataset(xte, yte, class_names, mean, std, spec.name)
    return train, None if val is None else ImageDataset(*val, class_names, mean, std, spec.name), test


def load_official(
    name_or_path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None, *,
    image_size: Size = None, channels: int | None = None,
) -> tuple[ImageDataset, ImageDataset]:
    """The official ``(train, test)`` sets, with mean/std of the full training set.

    ``name_or_path`` is a dataset name (see :func:`available_datasets`), a directory or an
    ``.npz``; a directory's format is inferred (IDX files -> ``fashion_mnist`` class names if
    the path contains "fashion", else ``mnist``'s; CIFAR batches -> ``cifar10``; class
    folders -> own images). ``image_size`` and ``channels`` are for own images only (see
    :func:`load_dataset`); their test set is empty unless they have one, and a given ``val``
    is not part of ``train``.
    """
    train, _, test = _read(name_or_path, root, image_size, channels)
    return train, test


def split_indices(
    labels: np.ndarray,
    val_fraction: float = 0.1,
    seed: int | np.random.Generator = 0,
    *,
    stratified: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic ``(train_idx, val_idx)`` partition of ``range(len(labels))``.

    The validation set has exactly ``round(val_fraction * n)`` samples. With
    ``stratified=True`` every class contributes ``floor(val_fraction * n_c)`` samples plus
    one for the classes with the largest remainders (ties -> lower class index), so class
    proportions are kept. Which samples go to val is drawn from one permutation of
    ``numpy.random.default_rng(seed)`` (or the given Generator). Both index arrays are
    sorted ascending, so the original sample order is preserved within each part.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    labels = np.asarray(labels)
    n = labels.shape[0]
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_val = int(round(val_fraction * n))
    if not stratified:
        val = np.sort(perm[:n_val])
    else:
        classes, counts = np.unique(labels, return_counts=True)
        exact = val_fraction * counts
        quota = np.floor(exact).astype(np.int64)
        extra = n_val - int(quota.sum())
        if extra > 0:
            order = np.lexsort((np.arange(len(classes)), -(exact - quota)))
            quota[order[:extra]] += 1
        elif extra < 0:  # cannot happen for round() of a sum of floors, kept for safety
            order = np.lexsort((np.arange(len(classes)), exact - quota))
            for i in order[: -extra]:
                quota[i] -= 1
        shuffled_labels = labels[perm]
        parts = [perm[shuffled_labels == c][:q] for c, q in zip(classes, quota)]
        val = np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)
    mask = np.ones(n, dtype=bool)
    mask[val] = False
    return np.flatnonzero(mask), val.astype(np.int64)


def split_train_val(
    dataset: ImageDataset,
    val_fraction: float = 0.1,
    seed: int | np.random.Generator = 0,
    *,
    stratified: bool = True,
    recompute_stats: bool = True,
) -> tuple[ImageDataset, ImageDataset]:
    """Split ``dataset`` into ``(train, val)`` with :func:`split_indices`.

    With ``recompute_stats`` both parts get the mean/std of the new train part (so no
    statistic leaks from val); otherwise they keep ``dataset``'s.
    """
    tr_idx, va_idx = split_indices(dataset.labels, val_fraction, seed, stratified=stratified)
    train, val = dataset.subset(tr_idx), dataset.subset(va_idx)
    if recompute_stats and len(train):
        mean, std = channel_stats(train.images)
        train, val = train.with_stats(mean, std), val.with_stats(mean, std)
    return train, val


def load_dataset(
    name_or_path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int | np.random.Generator = 0,
    stratified: bool = True,
    image_size: Size = None,
    channels: int | None = None,
) -> DataSplits:
    """Load a dataset from local files and split it into train / val / test.

    Args:
        name_or_path: ``"fashion_mnist"``, ``"mnist"``, ``"cifar10"``,
            ``"fashion_mnist_tiny"`` (the subset shipped in the package), ``"folder"`` (your
            own images at ``root``: ``root/<class>/*.png|jpg|jpeg`` or an ``.npz``, see
            ``nas.data._folder``), or a directory / ``.npz`` path.
        root: directory to read a named dataset from instead of the default search
            (see :func:`find_dataset_root`; ``$HWNAS_DATA_DIR`` is honoured when None).
        val_fraction: share of the official training set held out as validation (own
            data with a ``val`` folder or ``x_val`` keeps that one instead).
        seed: int or ``numpy.random.Generator`` for the split; same seed -> same split.
        stratified: keep class proportions in the split (see :func:`split_indices`).
        image_size: own images only: resize every image to this (int or ``(H, W)``) when
            loading (default: keep their size, which must then be common to all).
        channels: own images only: 1 (grayscale) or 3 (RGB); None infers it (RGB if any
            image has colour).

    Returns:
        :class:`DataSplits` whose ``test`` is the official test set (own data: its test
        folder / ``x_test``, else empty) and whose mean/std (shared by all three splits)
        are computed on the train part only.

    Raises:
        DatasetNotFoundError: the files are missing (message says where we looked and
            how to get them). DatasetFormatError: a file is corrupt or truncated, or own
            data is malformed (the message names the folder, file or key).
    """
    full_train, given_val, test = _read(name_or_path, root, image_size, channels)
    if given_val is None:
        train, val = split_train_val(full_train, val_fraction, seed, stratified=stratified)
    else:
        train, val = full_train, given_val
    return DataSplits(train, val.with_stats(train.mean, train.std), test.with_stats(train.mean, train.std))
