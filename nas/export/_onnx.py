"""Export any module to ONNX (the legacy TorchScript exporter: no extra dependency)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

from nas.export._atomic import ExportError, atomic_export

DEFAULT_OPSET = 17


def export_onnx(module, path: str | Path, input_shape: Sequence[int], opset: int = DEFAULT_OPSET) -> Path:
    """Write `module` (eval mode, float32, static `input_shape` e.g. ``(1, 3, 224, 224)``) as ONNX.

    The file is written atomically (temporary file, then rename). Input is named ``input``,
    output ``output``. Returns the path.
    """
    import torch

    path = Path(path)
    sample = torch.zeros(*input_shape)
    with atomic_export(module, path, "ONNX") as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (sample,), tmp, input_names=["input"], output_names=["output"],
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    return path
