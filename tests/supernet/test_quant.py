"""Simulated int8 (`nas.supernet.fake_quantized`) against the real thing: the same subnet exported to
ONNX and quantized by ONNX Runtime (`nas.export.quantize_onnx`), on real images, no mocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import load_dataset, make_loaders
from nas.export import export_onnx, quantize_onnx
from nas.supernet import SharedWeightEvaluator, extract, fake_quantized, recalibrate_bn, supernet_from_checkpoint

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "experiments/weights/supernet_fmnist.pt"


@pytest.fixture(scope="module")
def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    splits = load_dataset("fashion_mnist_tiny", val_fraction=0.1, seed=0)
    out = []
    for x, y in make_loaders(splits, batch_size=32, resolution=28).test:
        out.append((x, y))
        if len(out) == 4:
            return out
    return out


def _ort_logits(model: Path, x: torch.Tensor) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: img[None].numpy()})[0] for img in x])


def test_fake_quant_computes_what_the_int8_onnx_model_computes(tmp_path, batches):
    supernet = supernet_from_checkpoint(WEIGHTS)
    arch = supernet.space.sample(np.random.default_rng(1))
    calibration = [x for x, _ in batches[:2]]
    net = recalibrate_bn(extract(supernet, arch), calibration, 28).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fake = fake_quantized(net, calibration, 28)
    fp32 = export_onnx(net, tmp_path / "fp32.onnx", (1, 1, 28, 28))
    int8 = quantize_onnx(fp32, tmp_path / "int8.onnx", [img[None].numpy() for x in calibration for img in x])
    x = torch.cat([x for x, _ in batches[2:]])
    truth = _ort_logits(int8, x)
    with torch.no_grad():
        err_fp32 = np.abs(net(x).numpy() - truth).mean()
        err_fake = np.abs(fake(x).numpy() - truth).mean()
    assert err_fake < 0.85 * err_fp32, (err_fake, err_fp32)  # closer to the int8 model than float32 is (0.68 here)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the input is left alone
    conv = next(m for m in fake.modules() if isinstance(m, torch.nn.Conv2d))
    assert max(len(torch.unique(row)) for row in conv.weight.flatten(1)) <= 255  # int8 levels per channel


def test_int8_evaluator_scores_the_simulated_int8_net(batches):
    supernet = supernet_from_checkpoint(WEIGHTS)
    arch = supernet.space.sample(np.random.default_rng(4))
    calibration = [x for x, _ in batches[:2]]
    fp32 = SharedWeightEvaluator(supernet, calibration, batches[2:])
    int8 = SharedWeightEvaluator(supernet, calibration, batches[2:], int8=True)
    a, b = fp32(arch), int8(arch)
    assert 0.3 < a <= 1 and 0.3 < b <= 1 and int8.int8 and not fp32.int8
    with pytest.raises(ValueError, match="calibration batch"):
        fake_quantized(extract(supernet, arch), [], 28)
