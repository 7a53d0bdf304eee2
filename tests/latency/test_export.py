"""fold_bn keeps the function; ONNX and TFLite exports compute what the torch module computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nas
from nas.export import ExportError, export_onnx, export_tflite, fold_bn, tflite_converter_available


def _network(tiny_space) -> torch.nn.Module:
    space = tiny_space()
    model = nas.build_model(space.sample(np.random.default_rng(0)), space.num_classes, space.in_channels)
    g = torch.Generator().manual_seed(0)
    for m in model.modules():  # non-trivial BN statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    return model.eval()


def test_fold_bn_same_function_no_bn_left_input_untouched(tiny_space):
    model = _network(tiny_space)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_bn(model)
    x = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-4, rtol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_export_onnx_matches_torch(tmp_path, tiny_space):
    import onnxruntime as ort

    model = fold_bn(_network(tiny_space))
    path = export_onnx(model, tmp_path / "m.onnx", (1, 1, 32, 32))
    x = np.random.default_rng(0).standard_normal((1, 1, 32, 32)).astype(np.float32)
    (out,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})
    with torch.no_grad():
        np.testing.assert_allclose(out, model(torch.from_numpy(x)).numpy(), atol=1e-4, rtol=1e-4)


def test_export_onnx_names_the_file_on_failure(tmp_path):
    class Bad(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.svd(x.flatten(1) @ x.flatten(1).T).U.numpy()  # not traceable

    with pytest.raises(ExportError, match="bad.onnx"):
        export_onnx(Bad(), tmp_path / "bad.onnx", (1, 1, 4, 4))
    assert not list(tmp_path.iterdir()), "no partial file is left behind"


@pytest.mark.skipif(not tflite_converter_available(), reason="litert-torch (hwnas[tflite]) not installed")
def test_export_tflite_matches_torch_with_nhwc_input(tmp_path, tiny_space):
    from nas._device._runtimes import _tflite_interpreter

    model = fold_bn(_network(tiny_space))
    path = export_tflite(model, tmp_path / "m.tflite", (1, 1, 32, 32))
    interpreter = _tflite_interpreter()[0](model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    assert list(inp["shape"]) == [1, 32, 32, 1]
    x = np.random.default_rng(0).standard_normal((1, 1, 32, 32)).astype(np.float32)
    interpreter.set_tensor(inp["index"], x.transpose(0, 2, 3, 1).copy())
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    with torch.no_grad():
        np.testing.assert_allclose(out, model(torch.from_numpy(x)).numpy(), atol=1e-4, rtol=1e-4)
