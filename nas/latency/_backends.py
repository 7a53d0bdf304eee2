"""Backends: how a layer or a network becomes something timed.

Every backend has the same small interface: `prepare` writes what a measuring process needs for one
entry (a model file for onnxruntime / tflite, nothing for torch), and the measuring process opens
the entry and times ``run()`` with the shared protocol (`nas._device._timing`).

- ``onnxruntime``: ONNX (opset 17) of the BN-folded module; CPU EP, intra-op threads, one inter-op
  thread, sequential execution, all graph optimizations.
- ``tflite``: TFLite via litert-torch (``hwnas[tflite]``), NHWC input; XNNPACK, threads.
- ``torch``: eager, BN folded, eval, ``torch.inference_mode``, optional channels_last,
  ``torch.set_num_threads``.

Entries have a dtype: float32 (default), or int8 for onnxruntime, where the float32 ONNX export is
statically quantized (`nas.export.quantize_onnx`: QDQ, per-channel int8 weights, uint8
activations, calibrated on random inputs: enough to time it) with the entry's ``quantization``
settings. TFLite full-integer and torch int8 are refused (`check_dtype`, which says why).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from nas._device import SUFFIX, RuntimeMissingError, runtime_version
from nas._errors import HwnasError

BACKENDS = ("onnxruntime", "tflite", "torch")


class BackendError(HwnasError):
    """An unknown backend, or one that cannot run here."""


def check_backend(name: str) -> None:
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; use one of {list(BACKENDS)}")


def backend_unavailable_reason(name: str) -> str | None:
    """Why `name` cannot build tables here (None when it can): its runtime or converter is missing."""
    check_backend(name)
    try:
        runtime_version(name)
    except RuntimeMissingError as err:
        return str(err)
    if name == "tflite":
        from nas.export import tflite_converter_available

        if not tflite_converter_available():
            return "converting models to TFLite needs litert-torch: pip install 'hwnas[tflite]'"
    return None


TFLITE_INT8_REASON = (
    "litert-torch's public quantization API (PT2EQuantizer + convert(quant_config=...), litert-torch 0.10) "
    "quantizes only conv, linear, add and pooling: hard-swish, hard-sigmoid and the squeeze-excite multiply stay "
    "float32 between DEQUANTIZE/QUANTIZE ops, and the model's input dtype follows its first op (int8 for a stem, "
    "float32 for a block), so it cannot produce a full-integer model of these layers; build an int8 table with "
    "--backend onnxruntime")


def check_dtype(backend: str, dtype: str) -> None:
    """`BackendError` unless `backend` can build `dtype` entries (float32 everywhere, int8 on onnxruntime)."""
    from nas.export import DTYPES

    if dtype not in DTYPES:
        raise BackendError(f"unknown dtype {dtype!r}; use one of {list(DTYPES)}")
    if dtype == "float32" or backend == "onnxruntime":
        return
    if backend == "tflite":
        raise BackendError(f"--dtype int8 --backend tflite is not supported: {TFLITE_INT8_REASON}")
    raise BackendError("--dtype int8 --backend torch is not supported: eager torch has no int8 inference path "
                       "that matches a deployed model; build an int8 table with --backend onnxruntime")


def entry_module(entry: Mapping[str, Any]):  # noqa: ANN201 - torch.nn.Module
    """The BN-folded, eval-mode module of a work entry (a layer key or a whole arch)."""
    from nas import Arch, BlockKey, build_block, build_model
    from nas.export import fold_bn

    if "key" in entry:
        module = build_block(BlockKey.from_dict(entry["key"]))
    else:
        module = build_model(Arch.from_dict(entry["arch"]), entry["num_classes"], entry["in_channels"])
    return fold_bn(module)


def prepare(backend: str, entry: Mapping[str, Any], folder: Path) -> None:
    """Write the model file of `entry` (if the backend uses files and it is not there yet)."""
    if backend == "torch":
        return
    path = folder / entry["file"]
    if path.exists():
        return
    from nas.export import export_onnx, export_tflite

    module = entry_module(entry)
    if backend == "onnxruntime" and entry.get("dtype", "float32") == "int8":
        from nas.export import quantize_onnx, random_calibration

        fp32 = path.with_name(path.name + ".float32.onnx")
        export_onnx(module, fp32, entry["input_shape"])
        try:
            quantize_onnx(fp32, path, random_calibration(entry["input_shape"]), entry.get("quantization") or {})
        finally:
            fp32.unlink(missing_ok=True)
    elif backend == "onnxruntime":
        export_onnx(module, path, entry["input_shape"])
    else:
        export_tflite(module, path, entry["input_shape"])


def model_file(backend: str, entry_id: str) -> str | None:
    return None if backend == "torch" else f"models/{entry_id}{SUFFIX[backend]}"


def open_torch_entry(entry: Mapping[str, Any], threads: int, channels_last: bool = False) -> Callable[[], Any]:
    """Build the entry's module in eager torch and return ``run()`` doing one inference."""
    import torch

    torch.set_num_threads(threads)
    module = entry_module(entry)
    x = torch.randn(*entry["input_shape"], generator=torch.Generator().manual_seed(0))
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def run() -> Any:
        with torch.inference_mode():
            return module(x)
    return run
