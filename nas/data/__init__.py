"""Local image-classification datasets (no network access, ever).

Typical use::

    from nas.data import load_dataset, make_loaders

    splits = load_dataset("fashion_mnist_tiny", val_fraction=0.1, seed=0)
    loaders = make_loaders(splits, batch_size=256, resolution=32, augment=True, generator=0)
    for x, y in loaders.train:  # x: float32 (B, 1, 32, 32) normalized, y: int64 (B,)
        ...

Datasets: ``fashion_mnist`` (Debian ``dataset-fashion-mnist``), ``mnist``, ``cifar10``
(python batches), ``fashion_mnist_tiny`` (2500 train / 800 test real Fashion-MNIST images
shipped in the package), ``folder`` (your own images: ``root/<class>/*.png|jpg|jpeg`` or an
``.npz`` with ``x_train``/``y_train``, see ``nas.data._folder``; ``make_image_folder`` writes a
synthetic one). Roots can be given with ``root=`` or ``$HWNAS_DATA_DIR``.
"""

from ._batches import BatchLoader, Loaders, make_loaders, to_tensors
from ._cifar import CIFAR10_CLASSES, read_cifar_batch
from ._folder import IMAGE_SUFFIXES, NPZ_KEYS, OwnData, is_own_data, read_image, read_own_data
from ._idx import read_idx, write_idx
from ._loader import (DATA_DIR_ENV, FASHION_MNIST_CLASSES, MNIST_CLASSES, TINY_DIR, available_datasets,
                      find_dataset_root, load_dataset, load_official, split_indices, split_train_val)
from ._types import (DataSplits, DatasetError, DatasetFormatError, DatasetNameError, DatasetNotFoundError,
                     ImageDataset, channel_stats)
from ._synthetic import make_image_folder

__all__ = ["CIFAR10_CLASSES", "DATA_DIR_ENV", "FASHION_MNIST_CLASSES", "IMAGE_SUFFIXES", "MNIST_CLASSES", "NPZ_KEYS",
           "TINY_DIR", "BatchLoader", "DataSplits", "DatasetError", "DatasetFormatError", "DatasetNameError",
           "DatasetNotFoundError", "ImageDataset", "Loaders", "OwnData", "available_datasets", "channel_stats",
           "find_dataset_root", "is_own_data", "load_dataset", "load_official", "make_image_folder", "make_loaders",
           "read_cifar_batch", "read_idx", "read_image", "read_own_data", "split_indices", "split_train_val",
           "to_tensors", "write_idx"]
