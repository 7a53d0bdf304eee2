"""Own data (`load_dataset("folder", root)`): class folders of real PNG/JPEG files and .npz arrays."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas.data import (DatasetFormatError, DatasetNameError, DatasetNotFoundError, available_datasets,
                      find_dataset_root, load_dataset, load_official, make_image_folder, make_loaders, read_image,
                      read_own_data)
from nas.supernet import TrainConfig, config_loaders

CLASSES = ("cat", "dog", "fox")


def _write(path: Path, mode: str, size: tuple[int, int], rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """3 classes x 6 images of 20x16 pixels: grayscale PNGs, RGB PNGs and an RGB JPEG."""
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for c in CLASSES:
        for i in range(6):
            mode, ext = ("L", "png") if i < 3 else ("RGB", "jpg" if i == 5 else "png")
            _write(root / c / f"{i}.{ext}", mode, (20, 16), rng)
    return root


def test_folder_is_registered(folder: Path) -> None:
    assert "folder" in available_datasets()
    assert find_dataset_root("folder", folder) == folder
    with pytest.raises(DatasetNotFoundError, match="root="):
        find_dataset_root("folder")


def test_folder_loads_classes_channels_and_size(folder: Path) -> None:
    splits = load_dataset("folder", folder, val_fraction=1 / 3, seed=0)
    assert splits.class_names == CLASSES and splits.name == "folder"
    assert splits.image_shape == (3, 16, 20)  # RGB because some files have colour; (C, H, W) of the files
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 6, 0)
    assert (splits.val.class_counts() == 2).all()  # stratified
    gray = load_dataset("folder", folder, channels=1, image_size=8)
    assert gray.image_shape == (1, 8, 8)
    rect = load_dataset(folder, image_size=(10, 12))  # a directory is recognized as well
    assert rect.image_shape == (3, 10, 12)
    # a grayscale file read as RGB repeats its channel; read at its own size it equals Pillow's pixels
    img = read_image(folder / "cat" / "0.png", channels=3)
    assert img.shape == (3, 16, 20) and (img[0] == img[1]).all() and (img[1] == img[2]).all()
    assert (img[0] == np.asarray(Image.open(folder / "cat" / "0.png"))).all()
    assert splits.mean == splits.val.mean == splits.test.mean and all(s > 0 for s in splits.std)


def test_folder_all_gray_is_one_channel(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for c in CLASSES[:2]:
        for i in range(3):
            _write(tmp_path / c / f"{i}.png", "L", (9, 9), rng)
    assert load_dataset("folder", tmp_path).image_shape == (1, 9, 9)


def test_split_is_seeded_and_disjoint(folder: Path) -> None:
    a = load_dataset("folder", folder, val_fraction=0.5, seed=3)
    b = load_dataset("folder", folder, val_fraction=0.5, seed=3)
    c = load_dataset("folder", folder, val_fraction=0.5, seed=4)
    assert np.array_equal(a.val.images, b.val.images) and np.array_equal(a.train.labels, b.train.labels)
    assert not np.array_equal(a.val.images, c.val.images)
    full = read_own_data(folder).train[0].reshape(18, -1)
    rows = {img.tobytes(): i for i, img in enumerate(full)}
    train = {rows[x.tobytes()] for x in a.train.images.reshape(len(a.train), -1)}
    val = {rows[x.tobytes()] for x in a.val.images.reshape(len(a.val), -1)}
    assert not train & val and len(train | val) == 18


def test_split_folders_keep_their_val_and_test(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    for split, n in (("train", 4), ("val", 2), ("test", 1)):
        for c in CLASSES:
            for i in range(n):
                _write(tmp_path / split / c / f"{i}.png", "RGB", (12, 12), rng)
    splits = load_dataset("folder", tmp_path, val_fraction=0.5)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 6, 3)
    assert splits.class_names == CLASSES
    assert load_official("folder", tmp_path)[1].class_counts().tolist() == [1, 1, 1]


def test_npz_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    nhwc = tmp_path / "nhwc.npz"
    np.savez(nhwc, x_train=rng.integers(0, 256, (20, 10, 10, 3), dtype=np.uint8), y_train=np.arange(20) % 4,
             x_val=rng.random((8, 10, 10, 3)), y_val=np.arange(8) % 4, class_names=np.array(list("abcd")))
    splits = load_dataset("folder", nhwc, image_size=6)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (20, 8, 0)
    assert splits.image_shape == (3, 6, 6) and splits.class_names == tuple("abcd")
    gray = tmp_path / "gray.npz"
    np.savez(gray, x_train=rng.integers(0, 256, (10, 7, 7), dtype=np.uint8), y_train=np.arange(10) % 2)
    splits = load_dataset(str(gray), val_fraction=0.2, seed=0)  # the path as the name
    assert splits.image_shape == (1, 7, 7) and splits.class_names == ("0", "1") and len(splits.val) == 2
    assert load_dataset("folder", gray, channels=3).image_shape == (3, 7, 7)
    assert find_dataset_root(str(gray)) == gray


@pytest.mark.parametrize("arrays, match", [
    ({"x_train": np.zeros((4, 5, 5), np.uint8)}, "x_train and y_train go together"),
    ({"x_train": np.zeros((4, 5, 5), np.uint8), "y_train": np.zeros(4, int), "y_val": np.zeros(2, int)},
     r"x_val and y_val go together; found \['y_val'\]"),
    ({"x_train": np.zeros((4, 5, 5), np.uint8), "y_train": np.zeros(3, int)}, "y_train must be 4 integer labels"),
    ({"x_train": np.zeros((4, 5, 5), np.uint8), "y_train": np.zeros(4, int), "images": np.zeros(1)},
     r"unknown key\(s\) \['images'\]"),
    ({"x_train": np.zeros((4, 5, 5), np.uint8), "y_train": np.arange(4), "class_names": np.array(["a", "b"])},
     r"labels in \[0, 3\] but there are 2 class_names"),
    ({"x_train": np.zeros((4, 5, 5, 2), np.uint8), "y_train": np.zeros(4, int)}, "x_train has shape"),
])
def test_npz_errors_name_the_key(tmp_path: Path, arrays: dict, match: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetFormatError, match=match) as err:
        load_dataset("folder", path)
    assert err.value.path == str(path)


def test_folder_errors_name_the_input(tmp_path: Path, folder: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetFormatError, match="no class folders") as err:
        load_dataset("folder", empty)
    assert err.value.path == str(empty)
    (folder / "eel").mkdir()
    (folder / "eel" / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetFormatError, match=r"class folder has no images.*notes\.txt") as err:
        load_dataset("folder", folder)
    assert err.value.path == str(folder / "eel")
    (folder / "eel" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DatasetFormatError, match="broken.png: unreadable image"):
        load_dataset("folder", folder)
    (folder / "eel" / "broken.png").unlink()
    _write(folder / "eel" / "big.png", "RGB", (30, 30), np.random.default_rng(0))
    with pytest.raises(DatasetFormatError, match="big.png.*differs.*set image_size"):
        load_dataset("folder", folder)
    assert load_dataset("folder", folder, image_size=16).num_classes == 4
    with pytest.raises(DatasetNotFoundError, match="does-not-exist"):
        load_dataset("folder", tmp_path / "does-not-exist")
    with pytest.raises(ValueError, match="channels must be 1"):
        load_dataset("folder", folder, channels=2)
    with pytest.raises(DatasetNameError, match="own images"):
        load_dataset("fashion_mnist_tiny", image_size=32)


def test_loose_images_say_to_use_class_folders(tmp_path: Path) -> None:
    _write(tmp_path / "a.png", "L", (4, 4), np.random.default_rng(0))
    with pytest.raises(DatasetFormatError, match="one folder per class"):
        load_dataset("folder", tmp_path)


def test_make_image_folder_is_seeded_and_loads(tmp_path: Path) -> None:
    a = make_image_folder(tmp_path / "a", num_classes=3, per_class=2, size=12, seed=5)
    b = make_image_folder(tmp_path / "b", num_classes=3, per_class=2, size=12, seed=5)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files) == 6 and files == sorted(p.relative_to(b) for p in b.rglob("*.png"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    gray = make_image_folder(tmp_path / "g", num_classes=2, per_class=2, size=10, channels=1)
    assert load_dataset("folder", gray).image_shape == (1, 10, 10)
    splits = load_dataset("folder", a, image_size=8, val_fraction=0.5)
    x, y = next(iter(make_loaders(splits, 4, resolution=16).train))
    assert x.shape == (3, 3, 16, 16) and y.shape == (3,)


def test_supernet_config_takes_image_size_and_channels(folder: Path) -> None:
    raw = {"output_dir": "out", "space": {"name": "ofa_mbv3"}, "phases": [{"name": "full", "steps": 1, "lr": 0.1}],
           "data": {"dataset": "folder", "root": str(folder), "image_size": 24, "channels": 1, "batch_size": 4}}
    config = TrainConfig.from_dict(raw)
    assert (config.data["image_size"], config.data["channels"]) == (24, 1)
    x, _ = next(iter(config_loaders(config, resolution=28).train))  # what `nas supernet train` iterates
    assert x.shape == (4, 1, 28, 28)


@pytest.mark.slow
def test_own_data_script_end_to_end() -> None:
    """experiments/own_data.sh: synthetic folder -> supernet -> search -> extracted model (a few minutes)."""
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(["bash", "experiments/own_data.sh"], cwd=repo, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2000 images, 10 classes" in done.stdout
    found = re.search(r"extracted model's val accuracy: ([0-9.]+)", done.stdout)
    assert found is not None and float(found.group(1)) > 0.8, done.stdout[-2000:]
