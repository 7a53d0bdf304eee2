"""Export any module to TFLite with litert-torch (the optional extra ``hwnas[tflite]``)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Sequence

from nas.export._atomic import ExportError, atomic_export


class MissingExtraError(ExportError):
    """An optional dependency is not installed."""


def tflite_converter_available() -> bool:
    """Whether litert-torch (the torch -> TFLite converter) can be imported."""
    try:
        import litert_torch  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _quiet_fds() -> Iterator[None]:
    """Silence the converter's C++ and Python logging (it writes straight to fds 1 and 2)."""
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null:
        try:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def export_tflite(module, path: str | Path, input_shape: Sequence[int], nhwc_io: bool = True,
                  quiet: bool = True) -> Path:
    """Convert `module` (eval mode, float32, static `input_shape` in NCHW, e.g. ``(1, 3, 32, 32)``)
    to a TFLite flatbuffer at `path` (written atomically).

    nhwc_io: give the model NHWC input (and NHWC output when the output is 4-D) as a TFLite model
    deployed on a device has, instead of NCHW with a transpose at each end.
    """
    try:
        import litert_torch
    except ImportError:
        raise MissingExtraError(
            f"exporting {str(path)!r} to TFLite needs litert-torch: pip install 'hwnas[tflite]'") from None
    import torch

    path = Path(path)
    sample = torch.zeros(*input_shape)
    with atomic_export(module, path, "TFLite") as tmp:
        model = module
        if nhwc_io and len(input_shape) == 4:
            with torch.no_grad():
                out_rank = module(sample).dim()
            model = litert_torch.to_channel_last_io(module, args=[0], outputs=[0] if out_rank == 4 else [])
            sample = sample.permute(0, 2, 3, 1).contiguous()
        with (_quiet_fds() if quiet else contextlib.nullcontext()):
            litert_torch.convert(model, (sample,)).export(tmp)
    return path
