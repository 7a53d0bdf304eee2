"""Export any module to ONNX (the legacy TorchScript exporter: no extra dependency)."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

from nas._errors import HwnasError

DEFAULT_OPSET = 17


class ExportError(HwnasError):
    """A model could not be exported (the message names the model file and the cause)."""


def export_onnx(module, path: str | Path, input_shape: Sequence[int], opset: int = DEFAULT_OPSET) -> Path:
    """Write `module` (eval mode, float32, static `input_shape` e.g. ``(1, 3, 224, 224)``) as ONNX.

    The file is written atomically (temporary file, then rename). Input is named ``input``,
    output ``output``. Returns the path.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = module.training
    module.eval()
    sample = torch.zeros(*input_shape)
    fd, tmp = tempfile.mkstemp(suffix=".onnx.tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (sample,), tmp, input_names=["input"], output_names=["output"],
                              opset_version=opset, do_constant_folding=True, dynamo=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise ExportError(f"ONNX export of {type(module).__name__} to {str(path)!r} failed: {err}") from err
    finally:
        module.train(was_training)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
