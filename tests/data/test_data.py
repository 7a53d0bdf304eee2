"""Tests for nas.data: IDX/CIFAR parsing, errors, splits and in-memory batching."""

from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nas.data import (
    CIFAR10_CLASSES,
    DATA_DIR_ENV,
    FASHION_MNIST_CLASSES,
    TINY_DIR,
    BatchLoader,
    DatasetFormatError,
    DatasetNotFoundError,
    DataSplits,
    ImageDataset,
    available_datasets,
    channel_stats,
    find_dataset_root,
    load_dataset,
    load_official,
    make_loaders,
    read_idx,
    split_indices,
    split_train_val,
    to_tensors,
    write_idx,
)

IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
FULL_FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="module")
def tiny() -> DataSplits:
    return load_dataset("fashion_mnist_tiny")


def _write_idx_set(d: Path, n_train: int = 40, n_test: int = 20, gz: bool = True) -> None:
    rng = np.random.default_rng(0)
    d.mkdir(parents=True, exist_ok=True)
    sfx = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(d / f"{prefix}-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(d / f"{prefix}-labels-idx1-ubyte{sfx}", (np.arange(n) % 10).astype(np.uint8))


# --- shipped subset ------------------------------------------------------------------


def test_tiny_files_small_and_present() -> None:
    files = [TINY_DIR / f"{n}.gz" for n in IDX_NAMES]
    assert all(f.is_file() for f in files)
    assert sum(f.stat().st_size for f in files) <= 1_500_000


def test_tiny_official_shapes_and_balance() -> None:
    train, test = load_official("fashion_mnist_tiny")
    assert train.images.shape == (2500, 1, 28, 28) and train.images.dtype == np.uint8
    assert test.images.shape == (800, 1, 28, 28)
    assert train.labels.dtype == np.int64
    assert train.labels.min() == 0 and train.labels.max() == 9
    assert (train.class_counts() == 250).all() and (test.class_counts() == 80).all()
    assert train.class_names == FASHION_MNIST_CLASSES
    # real Fashion-MNIST statistics (full set: mean 0.2860, std 0.3530)
    assert abs(train.mean[0] - 0.286) < 0.01 and abs(train.std[0] - 0.353) < 0.01
    assert not train.images.flags.writeable


def test_load_dataset_tiny(tiny: DataSplits) -> None:
    assert (len(tiny.train), len(tiny.val), len(tiny.test)) == (2250, 250, 800)
    assert tiny.image_shape == (1, 28, 28) and tiny.num_classes == 10
    assert (tiny.val.class_counts() == 25).all()  # stratified by default
    assert tiny.train.mean == tiny.val.mean == tiny.test.mean
    assert tiny.train.mean == channel_stats(tiny.train.images)[0]
    assert "fashion_mnist_tiny" in available_datasets()


# --- IDX parsing and corruption --------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    _write_idx_set(tmp_path, gz=gz)
    train, test = load_official("mnist", tmp_path)
    assert train.images.shape == (40, 1, 28, 28) and test.images.shape == (20, 1, 28, 28)
    assert train.class_names == tuple("0123456789")
    arr = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    write_idx(tmp_path / "x.idx", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.idx"), arr)


def _corrupt(tmp_path: Path, name: str, data: bytes) -> Path:
    d = tmp_path / "ds"
    _write_idx_set(d, gz=False)
    (d / name).write_bytes(data)
    return d / name


def _hdr(rank: int, *dims: int) -> bytes:
    return bytes([0, 0, 8, rank]) + np.array(dims, ">u4").tobytes()


IMG, LBL, TLBL = "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"


@pytest.mark.parametrize(
    "name,data,needle",
    [
        (IMG, _hdr(3, 5, 28, 28) + bytes(5 * 784 - 10), "truncated"),
        (IMG, b"\x00\x00", "truncated IDX header"),
        (IMG, _hdr(3, 5, 28)[:10], "truncated IDX header"),
        (IMG, b"\x12\x34\x08\x03" + bytes(100), "magic"),
        (IMG, _hdr(1, 4) + bytes(4), "rank is 1"),
        (LBL, _hdr(1, 40) + bytes(41), "trailing"),
        (TLBL, _hdr(1, 19) + bytes(19), "19 labels"),
        (TLBL, _hdr(1, 20) + bytes([12] * 20), "outside"),
    ],
)
def test_corrupt_idx_names_file(tmp_path: Path, name: str, data: bytes, needle: str) -> None:
    bad = _corrupt(tmp_path, name, data)
    with pytest.raises(DatasetFormatError) as ei:
        load_dataset("mnist", root=bad.parent)
    msg = str(ei.value)
    assert str(bad) in msg and needle in msg
    assert ei.value.path == str(bad)


def test_truncated_gzip_names_file(tmp_path: Path) -> None:
    _write_idx_set(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(DatasetFormatError, match="gzip") as ei:
        load_dataset("fashion_mnist", root=tmp_path)
    assert str(p) in str(ei.value)


# --- missing data ----------------------------------------------------------------------


def test_missing_dir_fashion(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DatasetNotFoundError) as ei:
        load_dataset("fashion_mnist", root=missing)
    msg = str(ei.value)
    assert isinstance(ei.value, FileNotFoundError)
    assert str(missing) in msg and "apt-get install dataset-fashion-mnist" in msg
    assert "\n" not in msg


def test_missing_file_in_existing_dir(tmp_path: Path) -> None:
    _write_idx_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match="t10k-labels-idx1-ubyte") as ei:
        load_dataset("fashion_mnist", root=tmp_path)
    assert str(tmp_path) in str(ei.value) and "apt-get" in str(ei.value)


def test_missing_cifar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as ei:
        load_dataset("cifar10")
    msg = str(ei.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg
    assert "cifar-10-python.tar.gz" in msg and "\n" not in msg
    with pytest.raises(DatasetNotFoundError, match="data_batch_1"):
        load_dataset("cifar10", root=tmp_path)


def test_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet")


def test_env_var_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_idx_set(tmp_path / "mnist")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert find_dataset_root("mnist") == tmp_path / "mnist"
    assert len(load_dataset("mnist", val_fraction=0.25).val) == 10
    # a directory path works too; format and class names are inferred
    assert load_dataset(tmp_path / "mnist").train.class_names[0] == "0"


# --- CIFAR-10 ----------------------------------------------------------------------------


def _write_cifar(d: Path, n: int = 20, protocol: int = 2) -> np.ndarray:
    d.mkdir(parents=True)
    rng = np.random.default_rng(1)
    all_data = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        all_data.append(data)
        batch = {b"batch_label": name.encode(), b"labels": [int(i % 10) for i in range(n)], b"data": data,
                 b"filenames": [f"{i}.png".encode() for i in range(n)]}  # fmt: skip
        (d / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    meta = {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072}
    (d / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return np.concatenate(all_data[:5])


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10(tmp_path: Path, protocol: int) -> None:
    raw = _write_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)
    # the parent directory is accepted too
    splits = load_dataset("cifar10", root=tmp_path, val_fraction=0.2, seed=3)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (80, 20, 20)
    assert splits.image_shape == (3, 32, 32) and splits.class_names == CIFAR10_CLASSES
    assert len(splits.mean) == 3
    train, _ = load_official("cifar10", tmp_path / "cifar-10-batches-py")
    np.testing.assert_array_equal(train.images.reshape(100, -1), raw)  # channel-major rows
    x, _ = next(iter(make_loaders(splits, 8, augment=True).train))
    assert x.shape == (8, 3, 32, 32)


def test_cifar_refuses_code_in_pickle(tmp_path: Path) -> None:
    d = tmp_path / "c"
    _write_cifar(d)
    (d / "data_batch_2").write_bytes(pickle.dumps({b"data": shutil.rmtree, b"labels": []}))
    with pytest.raises(DatasetFormatError, match="data_batch_2"):
        load_dataset("cifar10", root=d)


def test_cifar_bad_shape(tmp_path: Path) -> None:
    d = tmp_path / "c"
    _write_cifar(d)
    (d / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}))
    with pytest.raises(DatasetFormatError, match="test_batch"):
        load_dataset("cifar10", root=d)


# --- splits --------------------------------------------------------------------------------


@pytest.mark.parametrize("stratified", [True, False])
def test_split_deterministic_disjoint(tiny: DataSplits, stratified: bool) -> None:
    train, _ = load_official("fashion_mnist_tiny")
    a = split_indices(train.labels, 0.13, 7, stratified=stratified)
    b = split_indices(train.labels, 0.13, np.random.default_rng(7), stratified=stratified)
    c = split_indices(train.labels, 0.13, 8, stratified=stratified)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1], c[1])
    tr, va = a
    assert len(va) == round(0.13 * 2500) and len(tr) + len(va) == 2500
    assert np.intersect1d(tr, va).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(2500))
    if stratified:
        counts = np.bincount(train.labels[va], minlength=10)
        assert counts.max() - counts.min() <= 1


def test_split_datasets(tiny: DataSplits) -> None:
    again = load_dataset("fashion_mnist_tiny", seed=0)
    np.testing.assert_array_equal(again.val.images, tiny.val.images)
    other = load_dataset("fashion_mnist_tiny", seed=1)
    assert not np.array_equal(other.val.images, tiny.val.images)
    tr, va = split_train_val(tiny.test, 0.0)
    assert len(tr) == 800 and len(va) == 0
    with pytest.raises(ValueError):
        split_indices(np.zeros(10, np.int64), 1.0)


def test_image_dataset_validation() -> None:
    x = np.zeros((3, 1, 4, 4), np.uint8)
    with pytest.raises(ValueError):
        ImageDataset(x, np.array([0, 1, 5]), ("a", "b"), (0.5,), (0.5,))
    with pytest.raises(ValueError):
        ImageDataset(x.astype(np.float32), np.zeros(3, np.int64), ("a",), (0.5,), (0.5,))
    ds = ImageDataset(x, np.zeros(3, np.int32), ("a",), (0.5,), (0.5,))
    assert ds.labels.dtype == np.int64 and len(ds.take(2)) == 2


# --- tensors and batching ---------------------------------------------------------------------


def test_to_tensors_normalize_resize(tiny: DataSplits) -> None:
    x, y = to_tensors(tiny.train)
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (2250, 1, 28, 28)
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-3
    x32, _ = to_tensors(tiny.test, resolution=32, normalize=False, limit=10)
    ref = F.interpolate(torch.tensor(tiny.test.images[:10]).float() / 255, size=(32, 32), mode="bilinear")
    assert x32.shape == ref.shape and (x32 - ref).abs().max().item() < 1e-6
    x_rect, _ = to_tensors(tiny.test, resolution=(14, 20), limit=3)
    assert x_rect.shape == (3, 1, 14, 20)


def test_loader_batches_and_limit(tiny: DataSplits) -> None:
    loaders = make_loaders(tiny, 64, eval_batch_size=100, resolution=32, limit=300)
    assert loaders.train.num_samples == 300 and len(loaders.train) == 5
    shapes = [x.shape[0] for x, _ in loaders.train]
    assert shapes == [64, 64, 64, 64, 44]
    assert len(loaders.val) == 3 and loaders.test.image_shape == (1, 32, 32)
    seen = torch.cat([y for _, y in loaders.train])
    assert torch.equal(seen.sort().values, torch.from_numpy(tiny.train.labels[:300].copy()).sort().values)
    x, y = next(iter(loaders.test))  # eval loaders keep the order
    assert torch.equal(y, torch.from_numpy(tiny.test.labels[:100].copy()))
    dl = BatchLoader(tiny.val, 64, drop_last=True)
    assert len(dl) == 3 and len(list(dl)) == 3


def test_loader_determinism(tiny: DataSplits) -> None:
    def epochs(seed: int) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        loader = make_loaders(tiny, 32, augment=True, limit=128, generator=gen).train
        return [torch.cat([x for x, _ in loader]) for _ in range(2)]

    a, b, c = epochs(0), epochs(0), epochs(1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], a[1])  # epochs differ
    assert not torch.equal(a[0], c[0])


def test_augment_is_crop_and_flip(tiny: DataSplits) -> None:
    loader = BatchLoader(tiny.test, 32, augment=True, crop_padding=3, normalize=False, limit=32, generator=5)
    x, _ = next(iter(loader))
    assert x.shape == (32, 1, 28, 28)
    padded = F.pad(loader.images, (3, 3, 3, 3))
    n_flipped = 0
    for i in range(32):
        crops = [padded[i, :, dy : dy + 28, dx : dx + 28] for dy in range(7) for dx in range(7)]
        plain = any(torch.equal(x[i], cr) for cr in crops)
        flipped = any(torch.equal(x[i], cr.flip(-1)) for cr in crops)
        assert plain or flipped
        n_flipped += flipped and not plain
    assert 0 < n_flipped < 32
    # the padding is a black pixel after normalization
    norm = BatchLoader(tiny.test, 4, augment=True, crop_padding=8, hflip=False, limit=4, generator=0)
    assert torch.isclose(next(iter(norm))[0].min(), torch.tensor(-tiny.mean[0] / tiny.std[0])).item()


def test_full_fashion_mnist_if_installed() -> None:
    if not (FULL_FMNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not installed in {FULL_FMNIST} (apt-get install dataset-fashion-mnist)")
    full, test = load_official("fashion_mnist", FULL_FMNIST)
    train, val = split_train_val(full)
    assert (len(train), len(val), len(test)) == (54000, 6000, 10000)
    assert abs(full.mean[0] - 0.2860) < 1e-3 and abs(full.std[0] - 0.3530) < 1e-3
    # the shipped subset is the first 250 per class of the real training file
    tiny_train, _ = load_official("fashion_mnist_tiny")
    idx = np.sort(np.concatenate([np.flatnonzero(full.labels == c)[:250] for c in range(10)]))
    np.testing.assert_array_equal(tiny_train.images, full.images[idx])
    assert gzip.open(FULL_FMNIST / "t10k-labels-idx1-ubyte.gz").read(4) == b"\x00\x00\x08\x01"
