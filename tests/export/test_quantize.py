"""Post-training int8 quantization (`nas.export.quantize_onnx`, ``nas extract --quantize int8``) on the
tiny Fashion-MNIST subset shipped in the package: real images, real ONNX Runtime, no mocks."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import nas
from nas.cli import main as cli_main
from nas.data import load_dataset, make_loaders
from nas.export import (INT8, QuantSettings, QuantizeError, export_onnx, fold_bn, predict_onnx, quantize_onnx,
                        random_calibration)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny_images() -> tuple[list[np.ndarray], np.ndarray]:
    splits = load_dataset("fashion_mnist_tiny", val_fraction=0.1, seed=0)
    loaders = make_loaders(splits, batch_size=32, resolution=28)
    images, labels = [], []
    for x, y in loaders.test:
        images.append(x.numpy())
        labels.append(y.numpy())
        if len(images) == 4:
            break
    return images, np.concatenate(labels)


def test_ptq_on_real_images_keeps_the_model_s_predictions(tmp_path, tiny_images):
    space = nas.load_space("ofa_mbv3", resolutions=[28], num_classes=10, in_channels=1, width_mult=0.5)
    torch.manual_seed(0)
    model = fold_bn(nas.build_model(space.preset("ofa_min", resolution=28), 10, 1))
    fp32 = export_onnx(model, tmp_path / "fp32.onnx", (1, 1, 28, 28))
    images, _ = tiny_images
    calibration = [img[None] for img in images[0][:16]]
    int8 = quantize_onnx(fp32, tmp_path / "int8.onnx", calibration)
    graph = onnx.load(str(int8)).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}
    assert [i.name for i in graph.input] == ["input"]  # float32 in, float32 out: runners need no change
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    a, b = predict_onnx(fp32, images[1:]), predict_onnx(int8, images[1:])
    assert len(a) == 96 and np.mean(a == b) >= 0.9  # 8-bit ranges from real images keep most argmaxes
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left behind


def test_settings_round_trip_and_bad_settings_name_the_key(tmp_path):
    assert QuantSettings.from_dict(INT8.to_dict()) == INT8
    with pytest.raises(QuantizeError, match="unknown quantization setting"):
        QuantSettings.from_dict({"bits": 4})
    model = fold_bn(nas.build_block(nas.load_space("ofa_mbv3", resolutions=[28], num_classes=10, in_channels=1,
                                                   width_mult=0.5).all_block_keys()[0]))
    fp32 = export_onnx(model, tmp_path / "b.onnx", (1, 1, 28, 28))
    with pytest.raises(QuantizeError, match="bad quantization setting"):
        quantize_onnx(fp32, tmp_path / "q.onnx", random_calibration((1, 1, 28, 28)), {"activation_type": "QInt3"})
    assert not (tmp_path / "q.onnx").exists()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from nas.supernet import TrainConfig, train_supernet

    out = tmp_path_factory.mktemp("ckpt")
    config = {"seed": 0, "output_dir": str(out), "space": {"name": "ofa_mbv3", "resolutions": [28], "width_mult": 0.5},
              "data": {"dataset": "fashion_mnist_tiny", "batch_size": 16, "limit": 96},
              "eval": {"bn_batches": 1, "limit": 32, "batch_size": 32},
              "phases": [{"name": "full", "steps": 2, "lr": 0.05}]}
    train_supernet(TrainConfig.from_dict(config), progress=False, log=lambda s: None)
    return out / "checkpoint.pt"


def test_extract_quantize_writes_int8_onnx_and_reports_both_top1(tmp_path, tiny_checkpoint, capsys):
    from nas.supernet import supernet_from_checkpoint

    arch = supernet_from_checkpoint(tiny_checkpoint).space.preset("ofa_min", resolution=28)
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(arch.to_json())
    out = tmp_path / "best.int8.onnx"
    assert cli_main(["extract", "--checkpoint", str(tiny_checkpoint), "--arch", str(arch_file), "--format", "onnx",
                     "--out", str(out), "--quantize", "int8", "--calibration-data", "2", "--evaluate"]) == 0
    text = capsys.readouterr().out
    assert "int8: 32 calibration images" in text  # 2 train batches of 16
    found = re.search(r"val top-1 on (\d+) images \(onnxruntime\): float32 ([0-9.]+), int8 ([0-9.]+) .* agree on "
                      r"([0-9.]+) of the images", text)
    assert found, text
    assert int(found[1]) > 0 and 0 <= float(found[3]) <= 1 and float(found[4]) > 0.5
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(out)).graph.node}
    assert (tmp_path / "best.int8.onnx.float32.onnx").is_file()
    assert cli_main(["extract", "--checkpoint", str(tiny_checkpoint), "--arch", str(arch_file), "--format", "tflite",
                     "--out", str(tmp_path / "m.tflite"), "--quantize", "int8"]) == 2
    assert "--quantize int8 needs --format onnx" in capsys.readouterr().err
